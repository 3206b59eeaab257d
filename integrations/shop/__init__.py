"""Shop integration: products, orders, emails and labels."""
