"""The folder of each scene of a protocol: a path as given, or generated, split or imported under the study's
output (``scenes/<name>``, remade only when its recipe changes), and its number of test views."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Optional

from depth_strategies.core.atomic import write_text_atomic
from depth_strategies.scenes.nerfstudio_data import is_nerfstudio_data
from depth_strategies.study.protocol import ProtocolError, SceneSpec, resolve_path


def prepare_scene(scene: SceneSpec, out: Path, data_root: Path) -> Path:
    """The folder of a protocol scene, generating or splitting it under ``out/scenes`` when needed."""
    if scene.path is not None:
        path = resolve_path(scene.path, data_root)
        if not ((path / "transforms_train.json").is_file() or is_nerfstudio_data(path)):
            raise ProtocolError(
                f"scene {scene.name}: {path} is neither a Blender-format scene (transforms_train.json) nor "
                "nerfstudio-data (transforms.json); point the protocol at the folder that holds one of them"
            )
        return path
    target = out / "scenes" / scene.name
    recipe = json.dumps(dataclasses.asdict(scene), sort_keys=True)
    stamp = target / ".recipe.json"
    if stamp.is_file() and stamp.read_text() == recipe:
        return target
    if scene.room is not None:
        from depth_strategies.scenes.room import make_room

        if target.exists():
            shutil.rmtree(target)
        make_room(target, scene.room)
    elif scene.generate is not None:
        from depth_strategies.scenes.builtin import make_scene

        g = scene.generate
        if target.exists():
            shutil.rmtree(target)
        make_scene(target, **dataclasses.asdict(g))  # supersampling: ds-make-scene's default
    elif scene.rgbd is not None:
        from depth_strategies.scenes.rgbd import ImportOptions, import_rgbd

        r = scene.rgbd
        options = {k: v for k, v in dataclasses.asdict(r).items() if k != "source"}
        import_rgbd(resolve_path(r.source, data_root), target, ImportOptions(**options))
    else:
        from depth_strategies.scenes.split import split_scene

        s = scene.split
        assert s is not None
        split_scene(resolve_path(s.source, data_root), target, s.from_split, s.n_train, s.n_val, s.n_test, s.seed)
    write_text_atomic(stamp, recipe)
    return target


def test_view_count(scene_dir: Path) -> int:
    """Number of test views of a scene (Blender format, or nerfstudio-data as its dataparser splits it)."""
    if is_nerfstudio_data(scene_dir):
        from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

        parser = NerfstudioDataParserConfig(data=scene_dir).setup()
        return len(parser.get_dataparser_outputs(split="test").image_filenames)
    return len(json.loads((scene_dir / "transforms_test.json").read_text())["frames"])


def images_have_alpha(folder: Path) -> Optional[bool]:
    """Whether the first training image of a scene folder has an alpha channel, which is how the model decides its
    scene type (``scene_type: auto``, :func:`depth_strategies.core.data.scene_type_of`): Blender format's first
    ``transforms_train.json`` frame (``file_path`` + ``.png``), else nerfstudio-data's first ``transforms.json``
    frame. None where the folder, its transforms or that image cannot be read."""
    from PIL import Image

    folder = Path(folder)
    blender = folder / "transforms_train.json"
    transforms = blender if blender.is_file() else folder / "transforms.json"
    try:
        name = json.loads(transforms.read_text())["frames"][0]["file_path"]
        if transforms == blender and not Path(name).suffix:
            name += ".png"  # NeRF-synthetic's file paths leave out the extension
        with Image.open(folder / name) as opened:
            return "A" in opened.getbands()
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
