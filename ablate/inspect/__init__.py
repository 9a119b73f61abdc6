"""Looking inside a network: layer tables, filters, activation maps and saliency."""
