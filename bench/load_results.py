"""bench_load's results: latencies, the server's share, CPU and memory, as a
JSON report and a printed summary."""

from __future__ import annotations

import os
import statistics
import time

from load_browser import Session
from load_procs import ServerSampler
from load_reporter import REPORT_IMAGES

TARGET_S = 3.0
MIB = 1024 * 1024


def summary(times: list[float]) -> dict:
    times = sorted(times)
    return {
        "n": len(times),
        "median_s": round(statistics.median(times), 3),
        "p90_s": round(times[min(len(times) - 1, int(0.9 * len(times)))], 3),
        "max_s": round(times[-1], 3),
        "min_s": round(times[0], 3),
    }


def server_times(records: list[dict]) -> list[float]:
    """The server's share of each interaction (where the websocket showed it)."""
    return [r["server_seconds"] for r in records if r["server_seconds"] is not None]


def report(args, run: dict, sampler: ServerSampler, rss_idle: int) -> dict:
    sessions: list[Session] = run["sessions"]
    records = [r for sess in sessions for r in sess.records]
    times = [r["seconds"] for r in records]
    kinds = ("image", "method", "method back")
    worst = max(records, key=lambda r: r["seconds"])
    steps = run["steps"]
    by_kind = {}
    for k in kinds:
        labels = [label for label in steps if label.endswith(f":{k}")]
        server_cpu = sum(steps[label]["server_cpu_s"] for label in labels)
        by_kind[k] = {
            **summary([r["seconds"] for r in records if r["kind"] == k]),
            "server": summary(server_times([r for r in records if r["kind"] == k])),
            # Server CPU per interaction and per burst (all sessions at once):
            # a burst cannot end sooner than its CPU time over the cores, nor,
            # for its pure-Python part (the GIL), sooner than that part's time.
            "server_cpu_per_interaction_s": round(
                server_cpu / (len(labels) * args.sessions), 3
            ),
            "server_cpu_per_burst_s": round(server_cpu / len(labels), 2),
        }
    return {
        "config": {
            "sessions": args.sessions,
            "rounds": args.rounds,
            "model": args.model,
            "method": args.method,
            "browsers": "one per session" if args.browser_per_session else "one",
            "server_env": dict(args.server_env),
            "server_cpus": sorted(args.server_cpus) if args.server_cpus else "all",
            "client_nice": args.client_nice,
            "client_processes_reniced": run.get("reniced", 0),
            "long_report": args.long_report,
        },
        "interactions": {
            **summary(times),
            "worst": worst,
            "server": summary(server_times(records)),
            "unchanged_results": sum(r["result"] == "unchanged" for r in records),
            "by_kind": by_kind,
        },
        "per_session": {
            str(sess.s): {
                "median_s": round(
                    statistics.median(r["seconds"] for r in sess.records), 3
                ),
                "max_s": round(max(r["seconds"] for r in sess.records), 3),
                "first_load_s": round(sess.first_load_s, 3),
            }
            for sess in sessions
        },
        "first_load": summary([sess.first_load_s for sess in sessions]),
        "server_memory": {
            "rss_before_sessions_mib": round(rss_idle / MIB, 1),
            "peak_rss_mib": round(sampler.peak_rss / MIB, 1),
            "vmhwm_mib": round(sampler.peak_hwm / MIB, 1),
            "rss_end_mib": round(sampler.last_rss / MIB, 1),
            "peak_threads": sampler.peak_threads,
            "samples": sampler.n,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_start": [round(v, 2) for v in run["load"]["start"]],
            "loadavg_end": [round(v, 2) for v in run["load"]["end"]],
            "loadavg_1min_max": round(sampler.load_max, 2),
            "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
        "cpu": {
            "total": run["total"],
            "interactions": run["interactions"],
            "steps": steps,
        },
        "target": {
            "worst_interaction_below_s": TARGET_S,
            "met": max(times) < TARGET_S,
            "server_met": max(server_times(records)) < TARGET_S,
        },
        **({"long_report": long_report(run, records)} if run["reporter"] else {}),
        "records": records,
    }


def long_report(run: dict, records: list[dict]) -> dict:
    """The explorers' latency with and without the long report, and the report's
    own rounds (images done, place in line, time to stop)."""
    out: dict = {"report_model": run["reporter"].model}
    for name in ("alone", "report"):
        mine = [r for r in records if r.get("phase") == name]
        out[name] = {
            **summary([r["seconds"] for r in mine]),
            "server": summary(server_times(mine)),
            "by_kind": {
                k: summary([r["seconds"] for r in mine if r["kind"] == k])
                for k in ("image", "method", "method back")
            },
        }
    a, b = out["alone"], out["report"]
    out["ratio_report_over_alone"] = {
        k: round(b[k] / a[k], 3) for k in ("median_s", "p90_s", "max_s")
    }
    out["ratio_report_over_alone"]["server_median_s"] = round(
        b["server"]["median_s"] / a["server"]["median_s"], 3
    )
    out["report_rounds"] = run["reporter"].rounds
    return out


def print_long_report(lr: dict) -> None:
    print(
        f"\nexplorer latency without and with a long report ({lr['report_model']}, "
        f"{REPORT_IMAGES} images) running in one more session:"
    )
    print(
        "  phase          n   median     p90   worst   server: median   worst"
        "   image med  method med  back med"
    )
    for name in ("alone", "report"):
        v = lr[name]
        k = v["by_kind"]
        print(
            f"  {'with report' if name == 'report' else 'alone':12s} {v['n']:4d}"
            f" {v['median_s']:7.2f} s {v['p90_s']:5.2f} s {v['max_s']:5.2f} s"
            f" {v['server']['median_s']:12.2f} s {v['server']['max_s']:5.2f} s"
            f" {k['image']['median_s']:9.2f} s {k['method']['median_s']:9.2f} s"
            f" {k['method back']['median_s']:7.2f} s"
        )
    r = lr["ratio_report_over_alone"]
    print(
        f"  ratio with / without: median {r['median_s']:.2f}, p90 {r['p90_s']:.2f}, "
        f"worst {r['max_s']:.2f}; server's share median {r['server_median_s']:.2f}"
    )
    for rr in lr["report_rounds"]:
        print(
            f"  report in round {rr['round']}: {rr['images']} images in "
            f"{rr['seconds']:.1f} s ({rr['images_per_s']:.1f}/s, restarted "
            f"{rr['restarts']}×), running at Stop: "
            f"{rr['still_running_at_stop']}; waiting in {rr['samples_waiting']} of "
            f"{rr['samples']} samples, places seen {rr['places_seen']}; Stop took "
            f"{rr['stop_s']:.2f} s (first batch {rr['first_batch_s']:.2f} s after Run)"
        )


def print_report(rep: dict) -> None:
    c, i, m = rep["config"], rep["interactions"], rep["machine"]
    mem, cpu = rep["server_memory"], rep["cpu"]["total"]
    print(
        f"\n{c['sessions']} sessions × {c['rounds']} rounds × 3 interactions on "
        f"{c['model']} (method {c['method']}), {c['browsers']} Chromium"
        + (f", server env {c['server_env']}" if c["server_env"] else "")
        + (
            f", server pinned to CPUs {c['server_cpus']}"
            if c["server_cpus"] != "all"
            else ""
        )
        + (f", browsers at nice {c['client_nice']}" if c["client_nice"] else "")
    )
    print(
        f"machine: {m['cpus']} CPUs, load average {m['loadavg_start'][0]:.2f} at "
        f"start, {m['loadavg_1min_max']:.2f} max (1 min), {m['loadavg_end'][0]:.2f} "
        f"at end; CPU busy {100 * cpu['machine_busy_fraction']:.0f}% over "
        f"{cpu['wall_s']:.0f} s: server {cpu['server_cpu_s']:.0f} s, Chromium + "
        f"driver {cpu['client_cpu_s']:.0f} s, other processes "
        f"{cpu['other_cpu_s']:.0f} s"
    )
    w = i["worst"]
    print(
        f"\ninteractions: n={i['n']}  median {i['median_s']:.2f} s  p90 "
        f"{i['p90_s']:.2f} s  worst {i['max_s']:.2f} s (session {w['session']}, "
        f"round {w['round']}, {w['kind']})"
    )
    sv = i["server"]
    print(
        f"  the server's share (request to its last message, without rendering): "
        f"median {sv['median_s']:.2f} s  worst {sv['max_s']:.2f} s (n={sv['n']})"
    )
    print(
        "  kind          median     worst   server: median    worst"
        "   server CPU per interaction   per burst"
    )
    for k, v in i["by_kind"].items():
        print(
            f"  {k:12s} {v['median_s']:6.2f} s  {v['max_s']:6.2f} s   "
            f"{v['server']['median_s']:10.2f} s {v['server']['max_s']:6.2f} s"
            f"{v['server_cpu_per_interaction_s']:17.3f} s"
            f"{v['server_cpu_per_burst_s']:19.2f} s"
        )
    if i["unchanged_results"]:
        print(f"  ({i['unchanged_results']} results identical to the previous one)")
    f = rep["first_load"]
    print(
        f"first load (all at once): median {f['median_s']:.2f} s, "
        f"worst {f['max_s']:.2f} s"
    )
    print("\nsession  median    worst  first load")
    for s, v in rep["per_session"].items():
        print(
            f"{s:>7s}  {v['median_s']:6.2f} s {v['max_s']:6.2f} s  "
            f"{v['first_load_s']:6.2f} s"
        )
    print(
        f"\nserver memory: peak RSS {mem['peak_rss_mib']:.0f} MiB (VmHWM "
        f"{mem['vmhwm_mib']:.0f} MiB), {mem['rss_before_sessions_mib']:.0f} MiB "
        f"before the sessions, {mem['rss_end_mib']:.0f} MiB at the end; up to "
        f"{mem['peak_threads']} threads"
    )
    if "long_report" in rep:
        print_long_report(rep["long_report"])
    t = rep["target"]
    print(
        f"target: worst interaction < {t['worst_interaction_below_s']:.0f} s: "
        + ("met" if t["met"] else f"NOT met ({i['max_s']:.2f} s)")
        + "; the server's share: "
        + ("met" if t["server_met"] else f"NOT met ({sv['max_s']:.2f} s)")
    )
