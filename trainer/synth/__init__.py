"""The synthetic world (SPEC §6): one seeded renderer, two products.

- `reid_set`: Market-1501-layout crop sets with an Occluded-Duke-style query split
  (`trainer synth reid`); `crop_render` draws one planned crop.
- `video`: multi-camera videos with MOTChallenge ground truth (`trainer synth video`) of the
  street laid out in `street_world`.
- Building blocks: `people` (identity looks), `figure` (articulated walking figures, joints,
  part labels, body-part label maps), `textures`, `scenes` (backgrounds), `occluders`,
  `cameras` (looks and pinhole geometry), `compositing` (depth-buffered layers → occlusion,
  hidden parts, joint visibility, part label maps), `preview` (contact sheets), `cli`.

Nothing is imported here, so `trainer --help` stays fast.
"""
