"""Route factories, one module per resource; each takes the ApiContext and returns its handlers."""
