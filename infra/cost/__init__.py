"""`agentplane cost`: a workflow's monthly cost and cost per 1,000 runs, from a measured local run and a price list."""

from infra.cost.model import CostError, Estimate, Pricing, Profile, estimate, load_pricing, parse_rate, render

__all__ = ["CostError", "Estimate", "Pricing", "Profile", "estimate", "load_pricing", "parse_rate", "render"]
