"""The guided replay of scene 09: steps that drive the real cluster, and the player that runs them."""

from app.replay.player import Narration, Player
from app.replay.steps import STEPS, Mark, Stage, Step

__all__ = ["STEPS", "Mark", "Narration", "Player", "Stage", "Step"]
