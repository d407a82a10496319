"""Pure capacity arithmetic shared by the program, the preview reports and the policy pack (no pulumi)."""
