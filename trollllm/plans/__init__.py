"""Plans: plan rows, upgrades and their credit grants, expiry and monthly resets."""
