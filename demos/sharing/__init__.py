"""Prospect access: share links with hashed tokens, the salesperson's link pages and the
prospect pages behind a link."""
