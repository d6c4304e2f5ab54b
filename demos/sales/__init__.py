"""The salesperson's pages: the catalog, one demo with its live panel and actions, My demos."""
