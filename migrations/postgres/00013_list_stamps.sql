-- A credential's row version (its xmin) stamps what a list shows of it
-- (store.Reader.CredentialStamps): the service keeps the summaries it
-- listed and, for a page, reads only the ids and row versions of the
-- credentials on it, then the summaries of those whose row version
-- changed (docs/architecture.md, "The management list").
--
-- Every change of a credential's own columns makes a new row version. A
-- list also shows fields of the credential's current version, which can
-- change in a transaction that leaves the credential's row alone; this
-- trigger gives the credential a new row version then (a no-op update,
-- HOT: no index is written). It fires only when a listed field changes
-- (not on stage, sealed value, key id or retired time; a version becomes
-- or stops being current only with an update of the credential's
-- current_version_id), and writes only when the credential points at the
-- version: the engine's cutover updates its new version before the
-- credential, so a rotation writes nothing more.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION versions_restamp_credential() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE credentials SET current_version_id = current_version_id
    WHERE (id = NEW.credential_id AND current_version_id = NEW.id)
       OR (id = OLD.credential_id AND current_version_id = OLD.id);
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER versions_restamp_credential AFTER UPDATE ON versions FOR EACH ROW
WHEN ((OLD.id, OLD.credential_id, OLD.fingerprint, OLD.created_at, OLD.activated_at, OLD.expires_at,
       OLD.granted_scope, OLD.metadata)
      IS DISTINCT FROM
      (NEW.id, NEW.credential_id, NEW.fingerprint, NEW.created_at, NEW.activated_at, NEW.expires_at,
       NEW.granted_scope, NEW.metadata))
EXECUTE FUNCTION versions_restamp_credential();

-- +goose Down
DROP TRIGGER versions_restamp_credential ON versions;
DROP FUNCTION versions_restamp_credential();
