"""Tests of the service (webapp/): real processes over real HTTP against moto."""
