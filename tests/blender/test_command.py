"""``ds-blender-render`` where ``bpy`` cannot run: the messages say how to get it and how to run the same file with a
stock Blender; the file that runs inside Blender imports nothing else and runs without the package installed."""

from __future__ import annotations

import ast
import subprocess
import sys

from depth_strategies.blender import command


def test_a_python_other_than_3_11_is_told_the_extra_and_the_stock_blender_command():
    message = command.bpy_problem((3, 12), lambda name: object(), "scene.blend", "out")
    assert "Python 3.11 only" in message and "this is Python 3.12" in message
    assert 'pip install -e ".[blender]"' in message
    assert f"blender -b scene.blend -P {command.SCRIPT} -- out" in message


def test_a_missing_bpy_is_told_the_extra_and_the_stock_blender_command():
    message = command.bpy_problem((3, 11), lambda name: None, None, "out")
    assert "not installed" in message and 'pip install -e ".[blender]"' in message
    assert f"blender -b -P {command.SCRIPT} -- out --demo" in message
    assert command.bpy_problem((3, 11), lambda name: object(), None, "out") is None


def test_the_script_run_without_bpy_and_without_the_package_says_how_to_get_bpy(tmp_path):
    # as a stock Blender would run it without bpy: the package is not importable, views.py is read from beside it
    code = ("import runpy, sys; sys.modules['bpy'] = None; sys.modules['depth_strategies'] = None; "
            f"sys.argv = ['render_scene.py', '--', {str(tmp_path / 'out')!r}, '--demo']; "
            f"runpy.run_path({str(command.SCRIPT)!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "bpy module is not importable" in proc.stderr and 'pip install -e ".[blender]"' in proc.stderr
    assert f"blender -b SCENE.blend -P {command.SCRIPT} -- OUT" in proc.stderr
    assert not (tmp_path / "out").exists()


def imported_roots(path) -> set:
    tree = ast.parse(path.read_text())
    roots = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    return roots | {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}


def test_the_script_imports_only_bpy_mathutils_the_standard_library_and_views_beside_it():
    # depth_strategies only for its own views module, with views.py beside the file as the fallback
    assert imported_roots(command.SCRIPT) - {"bpy", "mathutils", "views", "depth_strategies"} <= \
        set(sys.stdlib_module_names)
    assert imported_roots(command.SCRIPT.with_name("views.py")) <= set(sys.stdlib_module_names)
    assert "from depth_strategies.blender import views\n" in command.SCRIPT.read_text()
