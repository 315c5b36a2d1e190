"""Reports built from the journal: view models, templates and their PDF rendering."""
