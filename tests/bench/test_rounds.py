"""bench/run.py --rounds: the headline ratios are medians over alternating rounds."""

from __future__ import annotations

from bench.run import Phase, rounds_note, rounds_ratio


def _pair(relais_rps: float, bare_rps: float, cpu_ms: float) -> tuple[Phase, Phase]:
    relais = Phase("search", rps=relais_rps, p50_ms=5.0, p99_ms=9.0, server_cpu_ms_per_request=cpu_ms)
    bare = Phase("bare", rps=bare_rps, p50_ms=0.5, p99_ms=1.0, server_cpu_ms_per_request=0.1)
    return relais, bare


def test_a_round_measured_while_the_machine_slowed_down_does_not_move_the_headline() -> None:
    # Round 2's bare run fell in a slow spell of the machine: alone, it would read 20 %.
    rounds = [_pair(900, 9000, 1.0), _pair(900, 4500, 1.1), _pair(1000, 9500, 0.9)]

    ratios = rounds_ratio(rounds)

    assert ratios["throughput_pct"] == 10.5  # 10.0, 20.0, 10.5
    assert ratios["server_cpu_per_request_factor"] == 10.0
    note = rounds_note(rounds, ratios)
    assert "3 alternating rounds" in note and "20.0 %" in note and "(10.5 % of throughput)" in note
