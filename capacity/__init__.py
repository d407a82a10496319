"""Pure capacity arithmetic shared by the program, the preview reports and the policy pack.

No Pulumi imports here: every function takes plain numbers and returns plain numbers, so the
same figures can be computed from stack config, from captured resources or in a policy.
"""
