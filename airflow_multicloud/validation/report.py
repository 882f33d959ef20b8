"""What a validation found, per replica: counts, methods, row counts, expectations and the differences.

Rendered three ways: JSON (XCom, the report file next to the manifests), a fixed-width text table for the task
log and a standalone HTML page. Only URIs, keys, sizes, checksums and counts go in: never connection details.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_REPORT_DIR = "_multicloud/reports/"  # under each replica's prefix, next to the manifests
KINDS = ("missing", "extra", "size", "checksum", "rows", "unreadable", "expectation", "unverified")
Value = str | int | None


@dataclass(frozen=True)
class Difference:
    """One way a replica differs from the source (``key`` relative to the dataset prefix)."""

    key: str
    kind: str
    source: Value = None
    replica: Value = None
    detail: str = ""

    def line(self) -> str:
        text = f"{self.key}: {self.kind} (source: {_fmt(self.source)}, replica: {_fmt(self.replica)})"
        return f"{text} - {self.detail}" if self.detail else text


def _fmt(value: Value) -> str:
    return "-" if value is None else str(value)


@dataclass
class ReplicaReport:
    """One replica compared with the source. ``passed``/``failed``/``unverified`` count source objects.

    ``evidence``: for each object whose checksums passed, what they passed on, in words ("MD5 ETag equal on both
    sides").
    """

    uri: str
    objects: int = 0
    bytes: int = 0
    rows: int | None = None
    source_rows: int | None = None
    passed: int = 0
    failed: int = 0
    unverified: int = 0
    checksum_methods: dict[str, int] = field(default_factory=dict)
    files: dict[str, dict[str, Value]] = field(default_factory=dict)
    evidence: dict[str, str] = field(default_factory=dict)
    expectations: list[dict[str, Any]] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    difference_counts: dict[str, int] = field(default_factory=dict)
    reports: list[str] = field(default_factory=list)
    max_differences: int = 1000

    def add(self, diff: Difference) -> None:
        """Count every difference; keep the first ``max_differences`` (a broken replica can have millions)."""
        self.difference_counts[diff.kind] = self.difference_counts.get(diff.kind, 0) + 1
        if len(self.differences) < self.max_differences:
            self.differences.append(diff)

    def method(self, name: str) -> None:
        self.checksum_methods[name] = self.checksum_methods.get(name, 0) + 1

    def ok(self, allow_unverified: bool = False) -> bool:
        ignored = {"unverified"} if allow_unverified else set()
        return not any(n for kind, n in self.difference_counts.items() if kind not in ignored)

    def evidence_counts(self) -> list[tuple[str, int]]:
        """Each kind of evidence and the number of objects that passed on it, most common first."""
        return Counter(self.evidence.values()).most_common()

    @property
    def checksum_status(self) -> str:
        if self.failed:
            return "failed"
        return "unverified" if self.unverified else "passed"

    @property
    def expectations_passed(self) -> int:
        return sum(1 for e in self.expectations if e["success"])

    @property
    def expectations_failed(self) -> int:
        return sum(1 for e in self.expectations if not e["success"])

    def to_json(self, *, files: bool = True, max_differences: int | None = None) -> dict[str, Any]:
        d = asdict(self)
        d.pop("max_differences")
        d["differences"] = [asdict(x) for x in self.differences[:max_differences]]
        d["differences_omitted"] = sum(self.difference_counts.values()) - len(d["differences"])
        d["checksum_status"] = self.checksum_status
        d["expectations_passed"], d["expectations_failed"] = self.expectations_passed, self.expectations_failed
        if not files:
            d.pop("files")
            d.pop("evidence")
        d["evidence_counts"] = dict(self.evidence_counts())
        return d


@dataclass
class ValidationReport:
    source: str
    level: str
    objects: int = 0
    bytes: int = 0
    rows: int | None = None
    started: str = ""
    duration_s: float = 0.0
    allow_unverified: bool = False
    row_counts: bool = False
    expectations_run: bool = False
    replicas: list[ReplicaReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok(self.allow_unverified) for r in self.replicas)

    def first_differences(self, n: int = 20) -> list[str]:
        out: list[str] = []
        for rep in self.replicas:
            out += [f"[{rep.uri}] {d.line()}" for d in rep.differences[: n - len(out)]]
        return out

    def to_json(self, *, files: bool = True, max_differences: int | None = None) -> dict[str, Any]:
        head = {k: v for k, v in asdict(self).items() if k != "replicas"}
        return {
            **head,
            "ok": self.ok,
            "replicas": [r.to_json(files=files, max_differences=max_differences) for r in self.replicas],
        }

    def dumps(self, **kw: Any) -> str:
        return json.dumps(self.to_json(**kw), indent=2, sort_keys=False, default=str)

    # ---- text ----------------------------------------------------------------------------------------
    def table(self, max_differences: int = 20) -> str:
        rows_txt = "" if self.rows is None else f", {self.rows:,} rows"
        lines = [
            f"Validation of {self.source} ({self.level} level): {self.objects:,} objects, "
            f"{_size(self.bytes)}{rows_txt} -> {'OK' if self.ok else 'MISMATCH'} in {self.duration_s:.1f} s"
        ]
        header = ["replica", "objects", "bytes", "rows", "passed", "failed", "unverified", "expectations", "status"]
        body = [header]
        for r in self.replicas:
            exp = f"{r.expectations_passed} ok / {r.expectations_failed} failed" if self.expectations_run else "-"
            body.append(
                [
                    r.uri,
                    f"{r.objects:,}",
                    _size(r.bytes),
                    "-" if r.rows is None else f"{r.rows:,}",
                    f"{r.passed:,}",
                    f"{r.failed:,}",
                    f"{r.unverified:,}",
                    exp,
                    "OK" if r.ok(self.allow_unverified) else "MISMATCH",
                ]
            )
        widths = [max(len(row[i]) for row in body) for i in range(len(header))]
        for row in body:
            cells = (c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
            lines.append("  ".join(cells).rstrip())
        for r in self.replicas:
            methods = ", ".join(f"{m}: {n:,}" for m, n in sorted(r.checksum_methods.items(), key=lambda t: -t[1]))
            lines.append(f"checksums of {r.uri}: {methods or 'none compared'}")
            lines += [f"  passed on {words}: {n:,}" for words, n in r.evidence_counts()]
            counts = ", ".join(f"{k}: {n:,}" for k, n in r.difference_counts.items())
            if counts:
                lines.append(f"differences of {r.uri}: {counts}")
        shown = self.first_differences(max_differences)
        if shown:
            lines.append(f"first {len(shown)} differences:")
            lines += [f"  {s}" for s in shown]
        return "\n".join(lines)

    # ---- HTML ----------------------------------------------------------------------------------------
    def to_html(self, max_differences: int = 200) -> str:
        e = html.escape
        status = "OK" if self.ok else "MISMATCH"
        parts = [
            "<!DOCTYPE html><html><head><meta charset='utf-8'>",
            f"<title>Replica validation of {e(self.source)}: {status}</title>",
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child"
            "{text-align:left}.ok{color:#186a3b}.bad{color:#b03a2e;font-weight:bold}code{font-size:90%}</style>",
            "</head><body>",
            f"<h1>Replica validation: <span class='{'ok' if self.ok else 'bad'}'>{status}</span></h1>",
            f"<p>Source <code>{e(self.source)}</code>, level <b>{e(self.level)}</b>, {self.objects:,} objects, "
            f"{e(_size(self.bytes))}{'' if self.rows is None else f', {self.rows:,} rows'}; started {e(self.started)}"
            f", took {self.duration_s:.1f} s.</p>",
            "<table><tr><th>replica</th><th>objects</th><th>bytes</th><th>rows</th><th>passed</th><th>failed</th>"
            "<th>unverified</th><th>checksum methods</th><th>expectations</th><th>status</th></tr>",
        ]
        for r in self.replicas:
            ok = r.ok(self.allow_unverified)
            methods = "<br>".join(f"{e(m)}: {n:,}" for m, n in r.checksum_methods.items()) or "-"
            exp = f"{r.expectations_passed} passed, {r.expectations_failed} failed" if self.expectations_run else "-"
            parts.append(
                f"<tr><td><code>{e(r.uri)}</code></td><td>{r.objects:,}</td><td>{e(_size(r.bytes))}</td>"
                f"<td>{'-' if r.rows is None else f'{r.rows:,}'}</td><td>{r.passed:,}</td><td>{r.failed:,}</td>"
                f"<td>{r.unverified:,}</td><td>{methods}</td><td>{e(exp)}</td>"
                f"<td class='{'ok' if ok else 'bad'}'>{'OK' if ok else 'MISMATCH'}</td></tr>"
            )
        parts.append("</table>")
        for r in self.replicas:
            if not r.differences:
                continue
            counts = ", ".join(f"{k}: {n:,}" for k, n in r.difference_counts.items())
            parts.append(f"<h2>Differences in <code>{e(r.uri)}</code></h2><p>{e(counts)}</p>")
            parts.append("<table><tr><th>key</th><th>kind</th><th>source</th><th>replica</th><th>detail</th></tr>")
            for d in r.differences[:max_differences]:
                parts.append(
                    f"<tr><td><code>{e(d.key)}</code></td><td>{e(d.kind)}</td><td>{e(_fmt(d.source))}</td>"
                    f"<td>{e(_fmt(d.replica))}</td><td>{e(d.detail)}</td></tr>"
                )
            parts.append("</table>")
            more = sum(r.difference_counts.values()) - min(len(r.differences), max_differences)
            if more > 0:
                parts.append(f"<p>... and {more:,} more (see the JSON report).</p>")
        parts += self._evidence_html(max_differences)
        for r in self.replicas:
            failed = [x for x in r.expectations if not x["success"]]
            if failed:
                parts.append(f"<h2>Failed expectations in <code>{e(r.uri)}</code></h2><ul>")
                parts += [f"<li><code>{e(x['key'])}</code> ({e(x['mode'])}): {e(x['summary'])}</li>" for x in failed]
                parts.append("</ul>")
        parts.append("</body></html>")
        return "\n".join(parts)

    def _evidence_html(self, max_rows: int) -> list[str]:
        e = html.escape
        parts: list[str] = []
        for r in self.replicas:
            if not r.evidence:
                continue
            parts.append(f"<h2>Evidence for <code>{e(r.uri)}</code></h2><ul>")
            parts += [f"<li>{e(words)}: {n:,} objects</li>" for words, n in r.evidence_counts()]
            parts.append("</ul><table><tr><th>key</th><th>passed on</th></tr>")
            for key, words in list(r.evidence.items())[:max_rows]:
                parts.append(f"<tr><td><code>{e(key)}</code></td><td>{e(words)}</td></tr>")
            parts.append("</table>")
            if len(r.evidence) > max_rows:
                parts.append(f"<p>... and {len(r.evidence) - max_rows:,} more (see the JSON report).</p>")
        return parts


def _size(n: int) -> str:
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= div:
            return f"{n / div:,.1f} {unit}"
    return f"{n} B"


def kind_counts(diffs: list[Difference]) -> Counter[str]:
    return Counter(d.kind for d in diffs)
