from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def demos(tmp_path_factory: pytest.TempPathFactory):
    """Expert press-button demos recorded at the station: 2 scenes x 3 episodes, 2 cameras at 32 x 32."""
    from robolearn.collection.expert_demos import record_expert_demos

    out = tmp_path_factory.mktemp("demos") / "press-button"
    record_expert_demos(out, "press-button", [(0, 0), (1, 1)], 3, size=32, noise=0.05)
    return out
