"""Host monitors: one coroutine per signal, publishing into a shared snapshot."""
