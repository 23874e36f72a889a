"""Results: the typed schema and metric catalogue, storage, scaling fits, figures and reports."""
