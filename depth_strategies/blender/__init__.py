"""``ds-blender-render``: one's own ``.blend`` scene rendered with depth for every split, as a Blender-format dataset.

``render_scene.py`` runs *inside* Blender (the ``bpy`` package from PyPI, or a stock Blender with
``blender -b SCENE.blend -P render_scene.py -- OUT ...``), so it imports only ``bpy``, ``mathutils`` and the
standard library; ``command.py`` is the console script, which checks for ``bpy`` and runs ``render_scene.py`` in
a process of its own.
"""
