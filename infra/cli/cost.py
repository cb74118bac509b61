"""`agentplane cost`: monthly cost and cost per 1,000 runs of a workflow at a rate."""

from __future__ import annotations

import argparse
from pathlib import Path

from infra.cli.base import DEFAULT_STATE_DIR, CliError, Commands


def cmd_cost(args: argparse.Namespace) -> int:
    from infra.cost import CostError, Profile, estimate, load_pricing, parse_rate, render
    from infra.cost.measure import measure_locally
    from infra.synth import plane_assembly

    try:
        rate = parse_rate(args.rate)
        prices = load_pricing(args.region, Path(args.pricing) if args.pricing else None)
        if args.profile:
            profile = Profile.read(Path(args.profile))
        else:
            request = Path(args.request) if args.request else None
            assembly = Path(args.assembly) if args.assembly else None
            profile = measure_locally(
                args.workflow,
                request,
                runs=args.runs,
                state_dir=Path(args.state_dir),
                assembly=assembly,
                synthesize=plane_assembly,
            )
        if profile.workflow != args.workflow:
            raise CostError(f"the profile measured {profile.workflow!r}, not {args.workflow!r}")
        result = estimate(profile, prices, rate)
    except CostError as error:
        raise CliError(str(error)) from None
    if args.save_profile:
        try:
            Path(args.save_profile).write_text(profile.model_dump_json(indent=2) + "\n")
        except OSError as error:
            raise CliError(f"cannot write {args.save_profile}: {error.strerror}") from None
    print(result.model_dump_json(indent=2) if args.json else render(result, profile))
    return 0


def register(commands: Commands) -> None:
    cost = commands.add_parser("cost", help="monthly cost and cost per 1,000 runs of a workflow at a rate")
    cost.add_argument("--workflow", required=True)
    cost.add_argument("--rate", required=True, help="runs per second, minute, hour, day or month: 50/s, 1e6/month")
    cost.add_argument("--region", default="us-east-1", help="price list in infra/cost/pricing/ (default us-east-1)")
    cost.add_argument("--pricing", help="a price list file instead of the region's")
    cost.add_argument("--profile", help="a saved run profile (default: measure runs on a local plane now)")
    cost.add_argument("--save-profile", help="write the measured run profile here")
    cost.add_argument("--request", help="request body for the measured runs (default: the workflow's sample)")
    cost.add_argument("--runs", type=int, default=2, help="runs to measure and average")
    cost.add_argument("--assembly", help="measure this synthesized cloud assembly instead of synthesizing")
    cost.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR / "cost"))
    cost.add_argument("--json", action="store_true", help="print the estimate as JSON")
    cost.set_defaults(handler=cmd_cost)
