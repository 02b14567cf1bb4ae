"""What a caller may do: the policy decision point, its rules, the patient's controls, authors."""
