-- Slots (docs/specs/runtime/volume-mounts.md, "Slots"): each instance of a
-- process has a stable index that its replacement inherits, so that a
-- replacement gets its slot's volumes back. NULL for instances allocated
-- before slots existed (they hold no slot).
ALTER TABLE instances_view ADD COLUMN slot integer;
