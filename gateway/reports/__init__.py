"""The managers' office: incident history, the audit trail, the response-time and false-alarm reports.

Pure reads of the incident store (SQLAlchemy Core, aggregated in the database where it can be): each
function takes a connection or session, the filters and the settings, and returns typed results. Days,
months and shifts are the site's local ones (`zones.py`)."""
