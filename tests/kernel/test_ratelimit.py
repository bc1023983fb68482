from relais.core.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.25

    def __call__(self) -> float:
        return self.now


def test_burst_capacity_per_second_then_refused() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    decisions = [limiter.hit("c", "/api", 3) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[-1].retry_after == 1


def test_next_second_resets_the_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    for _ in range(3):
        limiter.hit("c", "/api", 3)
    clock.now += 1
    assert limiter.hit("c", "/api", 3).allowed


def test_windows_are_per_client_and_per_api() -> None:
    limiter = RateLimiter(FakeClock())
    assert limiter.hit("a", "/x", 1).allowed
    assert not limiter.hit("a", "/x", 1).allowed
    assert limiter.hit("b", "/x", 1).allowed
    assert limiter.hit("a", "/y", 1).allowed
