"""return-handler: takes back what returned or refunded orders earned in Capillary."""

__version__ = "0.2.0"
