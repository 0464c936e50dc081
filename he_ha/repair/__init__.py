"""Guarded repairs of the shared storage: clean metadata slots, reinitialise the lockspace.

Each repair is a plan (what would change, and every reason to refuse, decided from storage
over an observation window: he_ha.provision.liveness) and an apply step that only runs when
the plan has no refusal or the caller forces it. See docs/repair-and-init.md.
"""
