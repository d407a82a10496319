"""Review toolkit: offline preview, policy runner and review diff over the SDK's mock runtime."""
