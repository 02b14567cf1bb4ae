"""How often a login may be tried, and from where: growing delays rather than a lockout.

Every password or TOTP attempt is a row of ``access_login_attempt`` (login hash, source address,
time, success). Three limits, checked before an attempt is allowed:

1. **One login from one address** (the pair): after ``login_max_failures`` failures since the
   pair's last success (within a day), each further try waits ``login_backoff_seconds``, doubled
   with every further failure, up to ``lockout_minutes``. An attacker's failures from one address
   slow only that address: the owner, from their own address, is not held back.
2. **One login from all addresses** (the ceiling, looser): ``login_account_ceiling`` failures in a
   day refuse the login to every address it has not signed in from (second factor included) in
   the last 30 days, until the count falls; familiar addresses keep only their own pair limit. A
   botnet cannot lock the owner out, and still cannot guess for long.

Second-factor attempts are counted under a key of their own (``AccountService.totp_key``): only
who knows the password reaches them, so their ceiling spares no address, password guesses do not
hold up the owner's code, and a right password does not reset the count of wrong codes.
3. **One address across logins** (password spraying): ``source_max_failures`` failures in
   ``source_window_minutes``.

A refused attempt is not counted (retrying early does not lengthen the wait) and costs no argon2
work. Unknown logins are limited exactly like known ones.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, func, insert, select, update

from carnet.authn.models import access_login_attempt
from carnet.db.instants import parse_stamp, stamp
from carnet.settings import Settings

SOURCE_MAX_FAILURES = 20
SOURCE_WINDOW_MINUTES = 15.0
MEMORY = timedelta(days=1)  # failures older than this no longer count
FAMILIAR = timedelta(days=30)  # an address the login succeeded from within this is familiar

_attempt = access_login_attempt.c


class LoginThrottle:
    """Decides whether a login attempt may go ahead now, and records attempts and their outcome.

    Every method works in the caller's transaction (``conn``), so the account service can check and
    record under the account row's lock.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        source_max_failures: int = SOURCE_MAX_FAILURES,
        source_window_minutes: float = SOURCE_WINDOW_MINUTES,
        free_failures: int | None = None,
        account_ceiling: int | None = None,
    ) -> None:
        """``free_failures`` and ``account_ceiling`` replace the settings' pair and ceiling
        limits for requests cheaper to abuse than a guess (forgotten-password requests)."""
        self.free_failures = settings.login_max_failures if free_failures is None else free_failures
        self.first_delay = timedelta(seconds=settings.login_backoff_seconds)
        self.longest_delay = timedelta(minutes=settings.lockout_minutes)
        self.account_ceiling = (
            settings.login_account_ceiling if account_ceiling is None else account_ceiling
        )
        self.source_max_failures = source_max_failures
        self.source_window = timedelta(minutes=source_window_minutes)

    def wait(
        self,
        conn: Connection,
        login_hash: str,
        source: str,
        moment: datetime,
        *,
        familiar_key: str | None = None,
    ) -> int:
        """Seconds this attempt must wait (the Retry-After); 0 when it may go ahead. The ceiling
        spares an address that succeeded under ``familiar_key`` (the account's second factor) in
        the last 30 days; without one it spares none."""
        if self.source_failures(conn, source, moment) >= self.source_max_failures:
            return _seconds(self.source_window)
        if self.account_failures(conn, login_hash, moment) >= self.account_ceiling and not (
            familiar_key is not None and self._familiar(conn, familiar_key, source, moment)
        ):
            return _seconds(self.longest_delay)
        return self._pair_wait(conn, login_hash, source, moment)

    def delay_after(self, failures: int) -> timedelta:
        """The wait before the next try once a pair has ``failures`` failures."""
        if failures < self.free_failures:
            return timedelta(0)
        doublings = min(failures - self.free_failures, 32)  # 2**32 s is beyond any cap
        delay: timedelta = min(self.first_delay * float(2**doublings), self.longest_delay)
        return delay

    def _pair_wait(self, conn: Connection, login_hash: str, source: str, moment: datetime) -> int:
        last_success = conn.execute(
            select(func.max(_attempt.at)).where(
                _attempt.login_hash == login_hash,
                _attempt.source == source,
                _attempt.success.is_(True),
            )
        ).scalar_one()
        since = stamp(moment - MEMORY)
        if last_success is not None and last_success > since:
            since = last_success
        count, last_failure = conn.execute(
            select(func.count(), func.max(_attempt.at)).where(
                _attempt.login_hash == login_hash,
                _attempt.source == source,
                _attempt.success.is_(False),
                _attempt.at > since,
            )
        ).one()
        if not count or last_failure is None:
            return 0
        until = parse_stamp(last_failure) + self.delay_after(int(count))
        return _seconds(until - moment) if until > moment else 0

    def _familiar(self, conn: Connection, login_hash: str, source: str, moment: datetime) -> bool:
        found = conn.execute(
            select(_attempt.id)
            .where(
                _attempt.login_hash == login_hash,
                _attempt.source == source,
                _attempt.success.is_(True),
                _attempt.at > stamp(moment - FAMILIAR),
            )
            .limit(1)
        ).first()
        return found is not None

    def account_failures(self, conn: Connection, login_hash: str, moment: datetime) -> int:
        """Failures of a login from every address in the last day."""
        return self._count(conn, _attempt.login_hash == login_hash, moment - MEMORY)

    def source_failures(self, conn: Connection, source: str, moment: datetime) -> int:
        """Failures from an address, across logins, in the source window."""
        return self._count(conn, _attempt.source == source, moment - self.source_window)

    @staticmethod
    def _count(conn: Connection, condition: ColumnElement[bool], since: datetime) -> int:
        return int(
            conn.execute(
                select(func.count())
                .select_from(access_login_attempt)
                .where(condition, _attempt.at > stamp(since), _attempt.success.is_(False))
            ).scalar_one()
        )

    @staticmethod
    def record(conn: Connection, login_hash: str, source: str, moment: datetime) -> int:
        """Write an attempt as a failure before the secret is checked (parallel requests cannot
        overrun a limit); ``succeeded`` marks it afterwards. Returns its id."""
        result = conn.execute(
            insert(access_login_attempt).values(
                login_hash=login_hash, source=source, at=stamp(moment), success=False
            )
        )
        key = result.inserted_primary_key
        return int(key[0]) if key else 0

    @staticmethod
    def succeeded(conn: Connection, attempt_id: int) -> None:
        conn.execute(
            update(access_login_attempt).where(_attempt.id == attempt_id).values(success=True)
        )


def _seconds(delta: timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))
