"""gmis-mailscan: find the G-MIS secretariat's account mails and report the remedy that applies.

The pipeline, one module per stage: sources → parse → classify → verify → store → decide →
report. See README.md and SPEC.md.
"""

__version__ = "0.1.0"
