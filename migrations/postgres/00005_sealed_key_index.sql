-- Which master keys sealed the stored values, at a glance.
--
-- Every command that opens or seals values first checks that each key id
-- under which a sealed value exists is one it was given (a copied database
-- without its key, a mistyped ROTATOR_MASTER_KEY), and fails at once
-- otherwise. Versions are never deleted, and retired ones keep no sealed
-- value: this index holds only the versions that do (pending, current,
-- previous), by key id, so that the check (Store.SealedKeyIDs) hops from
-- one key id to the next instead of reading the versions table.

-- +goose Up
CREATE INDEX versions_sealed_key_idx ON versions (key_id) WHERE sealed IS NOT NULL;

-- +goose Down
DROP INDEX versions_sealed_key_idx;
