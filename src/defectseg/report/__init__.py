"""Report: pool runs into arms, compare them with intervals and verdicts, and write the report."""
