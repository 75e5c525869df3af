"""`merge-runs`: the shards of a family, run anywhere, gathered into one summary.

Each shard is an ordinary run with its own folder; this reads their run.json and results.csv
(nothing else, no ledger: the shards may have run on machines that share nothing) and writes
`OUT/results.csv` (every shard's rows, with the run each came from) and `OUT/family.json`
(the entities, where each report is, counts, cost, and the shards still missing). Runs of
another workbook, runs that are not family runs, and an entity reported by two runs are
refused with a message saying which, so a summary never mixes two families.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..workbook.family import shard_of
from .atomic import atomic_write_text

__all__ = ["MergedFamily", "merge_runs"]


@dataclass(frozen=True)
class MergedFamily:
    """What `merge_runs` wrote, for the command's one-line summary."""

    out_dir: Path
    runs: int
    entities: int
    rows: int
    missing_shards: tuple[str, ...]
    missing_entities: tuple[str, ...]
    counts: dict[str, int]
    cost_usd: float

    def describe(self) -> str:
        c = self.counts
        missing = (f"; missing shard(s) {', '.join(self.missing_shards)} ({len(self.missing_entities)} entities)"
                   if self.missing_shards else "")
        return (f"merged {self.runs} run(s): {self.entities} entities, {c['done']} done, {c['failed']} failed, "
                f"{c['skipped']} skipped of {c['total']} tasks, ${self.cost_usd:.4f}{missing} -> {self.out_dir}")


def merge_runs(run_dirs: Sequence[Path], out_dir: Path) -> MergedFamily:
    """Gather the family runs in `run_dirs` into `out_dir` (ConfigError, exit 2, for runs that do not belong together)."""
    if not run_dirs:
        raise ConfigError("merge-runs: give the run folders to merge, e.g. output/2026*")
    manifests = [_manifest(Path(d)) for d in run_dirs]
    _same_family(run_dirs, manifests)
    owner: dict[str, str] = {}
    entities: list[dict[str, Any]] = []
    for run_dir, manifest in zip(run_dirs, manifests, strict=True):
        for entity in manifest["family"]["entities"]:
            entity_id = entity["entity_id"]
            if entity_id in owner:
                raise ConfigError(f"merge-runs: entity {entity_id!r} is in run {owner[entity_id]} and in run "
                                  f"{manifest['run_id']}: give one run per shard (a shard run twice: keep the newer)")
            owner[entity_id] = manifest["run_id"]
            entities.append({**entity, "run_id": manifest["run_id"],
                             "folder": str(Path(run_dir) / entity["folder"])})
    header, rows = _results(run_dirs, manifests)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / "results.csv", _csv_text(header, rows))
        summary = _summary(run_dirs, manifests, entities)
        atomic_write_text(out_dir / "family.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    except OSError as error:
        raise ConfigError(f"merge-runs: cannot write {out_dir} ({error.strerror or error})") from None
    return MergedFamily(out_dir, len(manifests), len(entities), len(rows), tuple(summary["missing_shards"]),
                        tuple(summary["missing_entities"]), summary["counts"], summary["cost_usd"])


def _manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"merge-runs: {run_dir} has no run.json — give run folders (output/<run_id>) of "
                          "finished family runs") from None
    except (OSError, ValueError) as error:
        raise ConfigError(f"merge-runs: cannot read {path} ({error})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("family"), dict):
        raise ConfigError(f"merge-runs: {run_dir} is not a family run (run with --each ENTITIES [--shard I/N])")
    return manifest


def _same_family(run_dirs: Sequence[Path], manifests: Sequence[dict[str, Any]]) -> None:
    """One workbook (by content: shards may run from different paths) and one way of slicing it."""
    first = manifests[0]
    for run_dir, manifest in zip(run_dirs[1:], manifests[1:], strict=True):
        if manifest["family"].get("sheet_sha256") != first["family"].get("sheet_sha256"):
            raise ConfigError(
                f"merge-runs: {run_dir} ran another workbook than {run_dirs[0]} ({manifest['sheet']} against "
                f"{first['sheet']}, different contents): merge only the shards of one family")
        if manifest["family"].get("shards") != first["family"].get("shards"):
            raise ConfigError(
                f"merge-runs: {run_dir} is a shard of {manifest['family'].get('shards')} and {run_dirs[0]} one of "
                f"{first['family'].get('shards')}: merge shards cut the same way (the same N in --shard I/N)")
        if manifest["family"].get("family_ids") != first["family"].get("family_ids"):
            raise ConfigError(
                f"merge-runs: {run_dir} and {run_dirs[0]} ran different entities files ({manifest['family'].get('each')} "
                f"against {first['family'].get('each')}, different rows): run every shard from the same file")


def _results(run_dirs: Sequence[Path], manifests: Sequence[dict[str, Any]]) -> tuple[list[str], list[dict[str, str]]]:
    """Every run's results.csv rows, each with its run_id first; the header is the union, in order."""
    header: list[str] = ["run_id"]
    rows: list[dict[str, str]] = []
    for run_dir, manifest in zip(run_dirs, manifests, strict=True):
        path = Path(run_dir) / "results.csv"
        try:
            with open(path, newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                for name in reader.fieldnames or ():
                    if name not in header:
                        header.append(name)
                rows.extend({"run_id": manifest["run_id"], **row} for row in reader)
        except OSError as error:
            raise ConfigError(f"merge-runs: cannot read {path} ({error.strerror or error})") from None
    return header, rows


def _csv_text(header: Sequence[str], rows: Sequence[dict[str, str]]) -> str:
    """The rows as the run's own results.csv writes them (cells already neutralised there)."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(header), restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _summary(run_dirs: Sequence[Path], manifests: Sequence[dict[str, Any]],
             entities: Sequence[dict[str, Any]]) -> dict[str, Any]:
    shards = manifests[0]["family"].get("shards") or 1
    reported = {e["entity_id"] for e in entities}
    missing_entities = [i for i in manifests[0]["family"].get("family_ids", []) if i not in reported]
    # a shard no entity falls in is not missing: it never makes a run
    missing = [f"{i}/{shards}" for i in sorted({shard_of(e, shards) for e in missing_entities})]
    counts = {key: sum(m["counts"].get(key, 0) for m in manifests) for key in ("done", "failed", "skipped", "total")}
    statuses = {m["status"] for m in manifests}
    return {
        "schema_version": 1,
        "sheet_sha256": manifests[0]["family"].get("sheet_sha256"),
        "each": manifests[0]["family"].get("each"),
        "shards": shards,
        "missing_shards": missing,
        "missing_entities": missing_entities,
        "status": "done" if statuses == {"done"} and not missing else "incomplete",
        "counts": counts,
        "cost_usd": round(sum(m.get("cost_usd", 0.0) for m in manifests), 6),
        "runs": [{"run_id": m["run_id"], "dir": str(d), "shard": m["family"].get("shard"), "status": m["status"],
                  "counts": m["counts"], "cost_usd": m.get("cost_usd", 0.0)} for d, m in zip(run_dirs, manifests, strict=True)],
        "entities": list(entities),
    }
