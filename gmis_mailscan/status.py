"""Read the database, assess every account, and record each institution's decided state.

The glue behind `report`, `mark` and the end of `scan`: stored data in, Assessments out.
"""

from __future__ import annotations

from .assess import AccountFacts, Assessment, assess_account
from .config import Config
from .history import Change, diff, pair
from .rules import Rules
from .store.repo import InstitutionState, Repo
from .store.rescues import RescueLog


def assess_all(
    config: Config,
    rules: Rules,
    repo: Repo,
    save: bool = True,
    *,
    cause: str = "report",
    scan_run: int | None = None,
) -> list[Assessment]:
    """Assessments for the config's accounts (or, with none configured, the stored ones).

    Saving records every change against the stored states in the history, with its `cause`
    (scan, mark, report) and scan run.
    """
    stored = {a.name: a for a in repo.accounts()}
    names = [a.name for a in config.accounts] or list(stored)
    results: list[Assessment] = []
    for name in names:
        info = stored.get(name)
        configured = config.accounts_by_name.get(name)
        facts = AccountFacts(
            name=name,
            institution=configured.institution
            if configured
            else info.institution
            if info
            else None,
            address=configured.address if configured else info.address if info else None,
            quota=info.quota if info else None,
            last_error=info.last_error if info else None,
            answers=tuple((a.institution, a.answer) for a in repo.answers(name)),
            scanned=info is not None and info.last_scan_at is not None,
            rescued=tuple(
                (r.sha256, r.from_folder, r.to_folder)
                for r in RescueLog(repo).rescues(name)
                if r.status != "started"
            ),
        )
        assessments = assess_account(facts, repo.messages(name), rules, config.quota_full_ratio)
        if save and info is not None:
            states = {a.key: _state(a) for a in assessments}

            def changes_of(old: dict[str, InstitutionState], name=name, states=states):
                found = (
                    diff(name, o, n, rules, cause, scan_run, config.rules_dir)
                    for o, n in pair(old, states)
                )
                return [c for c in found if c is not None]

            repo.save_institutions(name, list(states.values()), changes_of)
        results.extend(assessments)
    return results


def needs_action(assessments: list[Assessment], changes: list[Change]) -> bool:
    """Exit 6: an institution's path is not `none`, or a change brought a new warning."""
    return any(a.decision.path != "none" for a in assessments) or any(c.warns for c in changes)


def _state(a: Assessment) -> InstitutionState:
    return InstitutionState(
        key=a.key,
        name=a.institution,
        login_id=a.login_id,
        application_number=a.application_number,
        address=a.address,
        state=a.decision.state,
        path=a.decision.path,
        row=a.decision.row,
        reasons=a.decision.reasons,
        warnings=a.warnings,
        suspicious=tuple(sorted({m.sha256 for m in a.evidence if not m.genuine})),
    )
