"""Reports: tables and figures read from a run's results (``report``, ``class_report``)."""
