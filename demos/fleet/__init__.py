"""What sales managers and template admins see of the whole fleet: overview, bulk actions,
activity feed and CSV exports."""
