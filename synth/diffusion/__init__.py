"""The DDPM behind SDAS: presets, training, saving/loading and the SDAS sampler."""

from synth.diffusion.model import ModelConfig, build_unet, load_model, save_model
from synth.diffusion.presets import PRESETS, Preset, get_preset
from synth.diffusion.sampler import SDASSampler, image_generators, to_uint8, torch_generator
from synth.diffusion.train import TrainOptions, train

__all__ = ["PRESETS", "ModelConfig", "Preset", "SDASSampler", "TrainOptions", "build_unet", "get_preset",
           "image_generators", "load_model", "save_model", "to_uint8", "torch_generator", "train"]
