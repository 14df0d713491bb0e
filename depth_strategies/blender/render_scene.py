"""Render a Blender scene with depth for every split, as the Blender / NeRF-synthetic layout that
``ns-train depth-* blender-data --data OUT`` reads with no extra flag.

This file runs inside Blender and imports only ``bpy``, ``mathutils``, the standard library and ``views.py`` beside
it (the options, the cameras and the transforms files as pure functions); ``bpy`` only inside the functions that
need it, so that the module imports anywhere:

* with the ``bpy`` package (``pip install -e ".[blender]"``, Python 3.11): ``ds-blender-render SCENE.blend OUT``
  runs ``python render_scene.py OUT --blend SCENE.blend ...`` in a process of its own;
* with a stock Blender: ``blender -b SCENE.blend -P render_scene.py -- OUT [options]``
  (``blender -b -P render_scene.py -- OUT --demo`` for the demo scene).

What lands in ``OUT``, per split (``train``, ``val``, ``test``):

* ``SPLIT/r_I.png``: the render, 8-bit RGBA on a transparent film (alpha 0 where no surface is hit);
* ``SPLIT/r_I_depth.exr``: the depth pass, one float32 channel ``V``: the camera's planar z-depth (distance along
  its optical axis) in Blender units, as Cycles and EEVEE write their Z pass; 1e10 where nothing is hit. It is
  rendered in a second pass of one sample through each pixel's centre (the pixel filter shrunk to 0.01 px), so
  that it is the depth of the pixel's centre ray, which the loader assumes, never an average across a silhouette;
* ``transforms_SPLIT.json``: ``camera_angle_x``, each frame's ``file_path``, ``depth_file_path`` and
  ``transform_matrix`` (camera-to-world, OpenGL/Blender camera axes), and the keys that tell the loader
  (``depth_strategies.core.depth_io``) how to decode the depth with no flag: ``depth_format`` ``"exr"``,
  ``depth_type`` ``"z"``, ``depth_scale`` (Blender units to dataset units) and ``depth_exr_channel`` ``"V"``;
  ``depth_units`` and ``blender_to_dataset`` say the same in words and numbers.

Dataset units. nerfstudio's ``blender-data`` puts the scene box at [-1.5, 1.5]^3 and the loader keeps object-scene
depth in [2, 6] (NeRF-synthetic's near and far), so the poses are written in *dataset units*: a point ``p`` of the
Blender scene is at ``(p - centre) * scale`` in the dataset, ``centre`` the centre of the scene's bounding box and
``scale`` such that its bounding sphere has radius ``--scene-radius`` (1.5). The cameras stand ``--radius`` (4.0,
NeRF-synthetic's 4.03) from the centre, so every depth lies in [radius - scene_radius, radius + scene_radius] =
[2.5, 5.5]. The images are rendered from the scene as it is (only the camera is added).

Resumable: a view whose PNG and EXR are both in place is kept (each is written to a temporary name and renamed);
``render_options.json`` records the options, and a rerun with other options into the same folder is refused.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

try:  # part of the installed package
    from depth_strategies.blender import views
except ImportError:  # a file that a stock Blender runs (-P): views.py lies beside it
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import views  # type: ignore[no-redef]

DEPTH_FILTER_WIDTH = 0.01
"""Pixel filter width of the depth pass, pixels (Cycles' smallest): every sample goes through the pixel's centre."""

GEOMETRY_TYPES = frozenset({"MESH", "CURVE", "SURFACE", "META", "FONT", "CURVES", "POINTCLOUD", "VOLUME"})
"""Blender object types that render as geometry (their bounds are the scene's bounds)."""

OPTIONS_FILE = "render_options.json"
"""In OUT: the options the views there were rendered with (a rerun with others is refused)."""
LOG_FILE = "blender.log"
"""In OUT: Blender's own output (a line per render tile and file saved)."""
BACKGROUND = 1e10
"""Depth where nothing is hit, Blender units: what Cycles' Z pass writes (the loader treats >= 1e9 as background)."""


# --- the scene (bpy from here on) ---------------------------------------------------------------------------------
def scene_bounds(scene) -> Tuple[views.Vec3, views.Vec3]:
    """World-space bounding box of everything in ``scene`` that renders as geometry (instances included)."""
    import bpy
    from mathutils import Vector

    depsgraph = bpy.context.evaluated_depsgraph_get()
    lo = [math.inf] * 3
    hi = [-math.inf] * 3
    for instance in depsgraph.object_instances:
        obj = instance.object
        if obj.type not in GEOMETRY_TYPES or obj.original.hide_render:
            continue
        if obj.type == "MESH" and len(obj.data.vertices) == 0:
            continue
        for corner in obj.bound_box:
            p = instance.matrix_world @ Vector(corner)
            for i in range(3):
                lo[i], hi[i] = min(lo[i], p[i]), max(hi[i], p[i])
    if not all(math.isfinite(v) for v in lo + hi):
        raise views.RenderError(
            f"the scene '{scene.name}' holds no geometry that renders (no mesh, curve, surface, text or metaball "
            "object with 'Disable in Renders' off): there is nothing to reconstruct; add objects, or pass --demo")
    if max(h - low for low, h in zip(lo, hi)) <= 0.0:
        raise views.RenderError(f"the scene '{scene.name}''s geometry has no extent (every vertex at one point)")
    return tuple(lo), tuple(hi)  # type: ignore[return-value]


def build_demo_scene() -> None:
    """A small scene from primitives, built by code: a checkered cube, a sphere, a cone and a torus on a round
    table, lit by a sun and a grey sky (the film is transparent, so the sky only lights)."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene

    def material(name: str, colour: Tuple[float, float, float], checker: Optional[Tuple[float, float, float]] = None):
        mat = bpy.data.materials.new(name)
        if mat.node_tree is None:  # Blender < 5: materials start without nodes
            mat.use_nodes = True
        bsdf = mat.node_tree.nodes["Principled BSDF"]
        bsdf.inputs["Base Color"].default_value = (*colour, 1.0)
        bsdf.inputs["Roughness"].default_value = 0.6
        if checker is not None:
            tex = mat.node_tree.nodes.new("ShaderNodeTexChecker")
            tex.inputs["Scale"].default_value = 6.0
            tex.inputs["Color1"].default_value = (*colour, 1.0)
            tex.inputs["Color2"].default_value = (*checker, 1.0)
            mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
        return mat

    def add(op, mat, **kwargs):
        op(**kwargs)
        obj = bpy.context.active_object
        obj.data.materials.append(mat)
        return obj

    add(bpy.ops.mesh.primitive_cylinder_add, material("table", (0.55, 0.35, 0.2), (0.35, 0.2, 0.1)),
        radius=1.0, depth=0.1, location=(0, 0, -0.05), vertices=48)
    add(bpy.ops.mesh.primitive_cube_add, material("cube", (0.8, 0.1, 0.1), (0.95, 0.9, 0.8)),
        size=0.6, location=(-0.35, -0.3, 0.3), rotation=(0, 0, 0.5))
    add(bpy.ops.mesh.primitive_uv_sphere_add, material("sphere", (0.1, 0.3, 0.8), (0.9, 0.9, 0.2)),
                 radius=0.3, location=(0.4, -0.2, 0.3), segments=32, ring_count=16)
    bpy.ops.object.shade_smooth()
    add(bpy.ops.mesh.primitive_cone_add, material("cone", (0.1, 0.7, 0.2)),
        radius1=0.25, depth=0.7, location=(0.0, 0.45, 0.35), vertices=32)
    add(bpy.ops.mesh.primitive_torus_add, material("torus", (0.9, 0.6, 0.1)),
        major_radius=0.2, minor_radius=0.06, location=(0.45, 0.4, 0.06))
    bpy.ops.object.light_add(type="SUN", location=(2.0, -2.0, 4.0), rotation=(0.6, 0.3, 0.8))
    bpy.context.active_object.data.energy = 3.0
    world = bpy.data.worlds.new("sky")
    if world.node_tree is None:
        world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.4, 0.4, 0.45, 1.0)
    scene.world = world


PassSettings = Dict[str, Dict[str, object]]
"""Render settings of one pass: {"cycles" | "eevee" | "render": {attribute: value}} of the scene."""


def pass_settings(scene, options: views.RenderOptions) -> Tuple[PassSettings, PassSettings]:
    """The settings of the image pass (the scene's own, with ``--samples``) and of the depth pass (one sample
    through each pixel's centre, no bounces, no denoising), read before anything is changed."""
    if options.engine == "cycles":
        own = {k: getattr(scene.cycles, k) for k in ("filter_width", "use_adaptive_sampling", "max_bounces",
                                                      "use_denoising")}
        return ({"cycles": {**own, "samples": options.samples}},
                {"cycles": {"samples": 1, "filter_width": DEPTH_FILTER_WIDTH, "use_adaptive_sampling": False,
                            "max_bounces": 0, "use_denoising": False}})
    return ({"eevee": {"taa_render_samples": options.samples}, "render": {"filter_size": scene.render.filter_size}},
            {"eevee": {"taa_render_samples": 1}, "render": {"filter_size": 0.0}})


def _apply(scene, settings: PassSettings, compositing: bool) -> None:
    """Apply one pass's settings; the compositor (which writes the depth) runs in the depth pass only."""
    for target, values in settings.items():
        owner = scene.render if target == "render" else getattr(scene, target)
        for key, value in values.items():
            setattr(owner, key, value)
    scene.render.use_compositing = compositing


def _depth_compositor(scene, background: bool):
    """A compositor graph that writes the Z pass as a one-channel float32 EXR (with ``background``: 1e10 where the
    depth pass's alpha is below 0.5); returns its File Output node."""
    import bpy

    group = bpy.data.node_groups.new("ds_depth", "CompositorNodeTree")
    scene.compositing_node_group = group
    layers = group.nodes.new("CompositorNodeRLayers")
    layers.scene = scene
    out = group.nodes.new("CompositorNodeOutputFile")
    fmt = out.format
    fmt.media_type = "IMAGE"
    fmt.file_format = "OPEN_EXR"
    fmt.color_mode = "BW"
    fmt.color_depth = "32"
    fmt.exr_codec = "ZIP"
    out.file_output_items.new("FLOAT", "depth")
    depth = layers.outputs["Depth"]
    if background:  # EEVEE writes its far clip where nothing is hit: 1e10 there, as Cycles
        hit = _math(group, "GREATER_THAN", layers.outputs["Alpha"], 0.5)
        miss = _math(group, "LESS_THAN", layers.outputs["Alpha"], 0.5)
        depth = _math(group, "ADD", _math(group, "MULTIPLY", depth, hit), _math(group, "MULTIPLY", miss, BACKGROUND))
    group.links.new(depth, out.inputs["depth"])
    return out


def _math(group, operation: str, a, b):
    """A math node of the compositor graph ``group`` on two inputs (sockets or numbers); returns its output."""
    node = group.nodes.new("ShaderNodeMath")
    node.operation = operation
    for socket, value in zip(node.inputs, (a, b)):
        if isinstance(value, (int, float)):
            socket.default_value = value
        else:
            group.links.new(value, socket)
    return node.outputs[0]


def prepare_scene(options: views.RenderOptions):
    """Set up the open scene for rendering; returns (scene, camera object, File Output node, centre, scale)."""
    import bpy

    scene = bpy.context.scene
    low, high = scene_bounds(scene)
    centre, scale = views.normalisation(low, high, options.scene_radius)
    scene.render.engine = views.ENGINES[options.engine]
    if options.engine == "cycles":
        scene.cycles.device = "CPU"
        scene.cycles.seed = 0
    scene.render.resolution_x = options.width
    scene.render.resolution_y = options.height
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
    scene.render.film_transparent = True
    scene.render.use_border = False
    image = scene.render.image_settings
    image.media_type = "IMAGE"
    image.file_format = "PNG"
    image.color_mode = "RGBA"
    image.color_depth = "8"
    scene.render.use_persistent_data = True
    scene.render.use_single_layer = True
    scene.render.use_motion_blur = False
    view_layer = bpy.context.view_layer
    view_layer.use_pass_combined = True
    view_layer.use_pass_z = True
    data = bpy.data.cameras.new("ds_camera")
    data.type = "PERSP"
    data.sensor_fit = "HORIZONTAL"
    data.angle_x = math.radians(options.fov)
    data.shift_x = data.shift_y = 0.0
    near, far = views.depth_bounds(options.radius, options.scene_radius)
    data.clip_start = 0.5 * near / scale
    data.clip_end = 2.0 * far / scale
    camera = bpy.data.objects.new("ds_camera", data)
    scene.collection.objects.link(camera)
    scene.camera = camera
    return scene, camera, _depth_compositor(scene, background=options.engine == "eevee"), centre, scale


def _render(log_fd: int) -> None:
    """``bpy.ops.render.render()`` with Blender's own output into the log file (it prints a line per tile)."""
    import bpy

    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(log_fd, 1)
    try:
        result = bpy.ops.render.render(write_still=True)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    if "FINISHED" not in result:
        raise RuntimeError(f"bpy.ops.render.render returned {result}")


def render_view(scene, camera, file_output, passes: Tuple[PassSettings, PassSettings], matrix: views.Matrix4,
                folder: Path, name: str, log_fd: int) -> None:
    """Render one view into ``folder``: the image, then the depth; each lands under its final name only when done."""
    from mathutils import Matrix

    camera.matrix_world = Matrix(matrix)
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=folder) as tmp:
        png = Path(tmp) / f"{name}.png"
        _apply(scene, passes[0], compositing=False)
        scene.render.filepath = str(png)
        _render(log_fd)
        _apply(scene, passes[1], compositing=True)
        scene.render.filepath = str(Path(tmp) / "depth_pass_image.png")  # the depth pass's own image is discarded
        file_output.directory = tmp
        file_output.file_name = f"{name}_"
        _render(log_fd)
        exr = Path(tmp) / f"{name}{views.DEPTH_SUFFIX}"
        if not png.is_file() or not exr.is_file():
            written = ", ".join(sorted(p.name for p in Path(tmp).iterdir())) or "nothing"
            raise views.RenderError(f"Blender wrote {written} for view {folder.name}/{name}, not {png.name} and "
                                    f"{exr.name}; see {folder.parent / LOG_FILE}")
        os.replace(png, folder / png.name)
        os.replace(exr, folder / exr.name)


def view_done(folder: Path, name: str) -> bool:
    """A view is kept on a rerun when both its image and its depth are in place."""
    return (folder / f"{name}.png").is_file() and (folder / f"{name}{views.DEPTH_SUFFIX}").is_file()


class Progress:
    """A progress bar per split on stderr, one update per view."""

    def __init__(self, split: str, total: int):
        self.split, self.total, self.start, self.tty = split, total, time.monotonic(), sys.stderr.isatty()

    def update(self, done: int, kept: int) -> None:
        width = 30
        filled = int(width * done / max(self.total, 1))
        rendered = done - kept
        rate = (time.monotonic() - self.start) / rendered if rendered else 0.0
        line = (f"{views.PROG}: {self.split:<5} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total}"
                f" ({kept} kept, {rate:.1f} s/view)")
        end = "\r" if self.tty and done < self.total else "\n"
        if self.tty or done == self.total or done % max(1, self.total // 10) == 0:
            sys.stderr.write(line + end)
            sys.stderr.flush()


def _write_json(path: Path, data: Dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _check_output(out: Path) -> None:
    """Create OUT (and its split folders) or say why it cannot be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        for split in views.SPLITS:
            (out / split).mkdir(exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise views.RenderError(f"cannot write the output folder {out}: {err.strerror or err}; choose a folder you can "
                          "write to") from None


def _check_resume(out: Path, recorded: Dict) -> None:
    """Refuse a rerun into OUT with other options than the views already there were rendered with."""
    path = out / OPTIONS_FILE
    if path.is_file():
        before = json.loads(path.read_text())
        changed = sorted(k for k in set(before) | set(recorded) if before.get(k) != recorded.get(k))
        if changed:
            diffs = "; ".join(f"{k}: {before.get(k)!r} then, {recorded.get(k)!r} now" for k in changed)
            raise views.RenderError(f"{out} was rendered with other options ({diffs}); rerun with the same options to "
                              "resume, or render into another folder")
    _write_json(path, recorded)


def render_all(out: Path, options: views.RenderOptions, scene_name: str) -> Dict[str, int]:
    """Render every view of every split into ``out`` (kept views are not rendered again); returns the count of
    views rendered and kept."""
    options.validate()
    out = Path(out)
    _check_output(out)
    scene, camera, file_output, centre, scale = prepare_scene(options)
    passes = pass_settings(scene, options)
    _check_resume(out, {**asdict(options), "views": list(options.views), "scene": scene_name,
                        "blender_to_dataset_scale": scale, "centre": list(centre)})
    for note in options.notes():
        print(f"{views.PROG}: note: {note}", file=sys.stderr)
    counts = {"rendered": 0, "kept": 0}
    log_fd = os.open(out / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for split, matrices in views.dataset_cameras(options).items():
            folder = out / split
            progress = Progress(split, len(matrices))
            kept = 0
            for i, matrix in enumerate(matrices):
                name = f"r_{i}"
                if view_done(folder, name):
                    kept += 1
                else:
                    try:
                        render_view(scene, camera, file_output, passes, views.blender_matrix(matrix, centre, scale),
                                    folder, name, log_fd)
                    except RuntimeError as err:
                        raise engine_error(options, err, out) from None
                progress.update(i + 1, kept)
            _write_json(out / f"transforms_{split}.json", views.transforms(options, split, matrices, centre, scale))
            counts["rendered"] += len(matrices) - kept
            counts["kept"] += kept
    finally:
        os.close(log_fd)
    return counts


def engine_error(options: views.RenderOptions, err: BaseException, out: Path) -> views.RenderError:
    """The error of a render that failed, with what to do for an engine that cannot run headless."""
    if options.engine == "eevee":
        return views.RenderError(
            f"EEVEE could not render here ({err}): headless, it needs an OpenGL context (a GPU driver, or Mesa's "
            f"llvmpipe for software rendering); render with --engine cycles, which runs on any CPU (Blender's output: "
            f"{out / LOG_FILE})")
    return views.RenderError(f"Blender failed to render ({err}); Blender's output: {out / LOG_FILE}")


def parser() -> argparse.ArgumentParser:
    """This script's arguments (after Blender's ``--``)."""
    p = argparse.ArgumentParser(
        prog="render_scene.py",
        description="Render the open Blender scene (or --blend FILE, or --demo) with depth for every split into OUT.")
    p.add_argument("out", type=Path, help="output folder (a Blender-format dataset; resumable)")
    p.add_argument("--blend", type=Path, help="the .blend file to open (with a stock Blender, pass it to blender -b)")
    p.add_argument("--demo", action="store_true", help="render the demo scene built from primitives")
    views.add_options(p)
    return p


def script_argv(argv: Sequence[str]) -> List[str]:
    """The script's own arguments: those after ``--`` (Blender's convention), else all but the program name."""
    argv = list(argv)
    return argv[argv.index("--") + 1:] if "--" in argv else argv[1:]


BPY_MISSING = (
    "this script runs inside Blender: the bpy module is not importable here ({err}). Install it with "
    "pip install -e \".[blender]\" (bpy==5.0.1, Python 3.11 only), or run it with a stock Blender: "
    "blender -b SCENE.blend -P {file} -- OUT [options]")


def main(argv: Sequence[str]) -> int:
    """Render; 0 on success, 2 (with a message on stderr) for an error the user can fix."""
    args = parser().parse_args(script_argv(argv))
    try:
        import bpy
    except ImportError as err:
        print(f"{views.PROG}: error: " + BPY_MISSING.format(err=err, file=Path(__file__).resolve()), file=sys.stderr)
        return 2
    try:
        options = views.options_from(args)
        if args.demo and args.blend is not None:
            raise views.RenderError("pass either --demo or a .blend file, not both")
        if args.demo:
            build_demo_scene()
            scene_name = "demo"
        elif args.blend is not None:
            if not args.blend.is_file():
                raise views.RenderError(f"{args.blend} does not exist")
            try:
                bpy.ops.wm.open_mainfile(filepath=str(args.blend.resolve()))
            except RuntimeError as err:
                raise views.RenderError(f"Blender cannot open {args.blend}: {err}") from None
            scene_name = args.blend.name
        else:
            if not bpy.data.filepath:
                raise views.RenderError("no scene: open a .blend (blender -b SCENE.blend -P ...), pass --blend, or "
                                        "--demo")
            scene_name = Path(bpy.data.filepath).name
        start = time.monotonic()
        counts = render_all(args.out, options, scene_name)
    except views.RenderError as err:
        print(f"{views.PROG}: error: {err}", file=sys.stderr)
        return 2
    print(f"{views.PROG}: wrote {args.out} ({counts['rendered']} views rendered, {counts['kept']} kept, "
          f"{time.monotonic() - start:.0f} s); train with: ns-train depth-hybrid blender-data --data {args.out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
