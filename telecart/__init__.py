"""Telecart: teleconsultation carts for rural clinics."""
