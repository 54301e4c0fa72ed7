-- Every Rollcall process keeps the bearer tokens it found live (store::auth_cache)
-- and forgets them all on a notification on the channel 'rollcall_auth'. These
-- triggers send one, with the commit of any change that can end a token's access,
-- whichever process (or a command, or someone at psql) makes it. Changes that only
-- give access need none: the cache keeps live tokens only. NOTIFY folds repeats in
-- one transaction into one.
CREATE FUNCTION rollcall_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('rollcall_auth', '');
    RETURN NULL;
END
$$;

-- A workspace token revoked (or a row deleted).
CREATE TRIGGER api_tokens_auth AFTER UPDATE ON api_tokens FOR EACH ROW
    WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
    EXECUTE FUNCTION rollcall_auth_changed();
CREATE TRIGGER api_tokens_auth_delete AFTER DELETE ON api_tokens FOR EACH STATEMENT
    EXECUTE FUNCTION rollcall_auth_changed();

-- An OAuth token revoked or deleted (expired tokens are swept by housekeeping).
CREATE TRIGGER oauth_tokens_auth AFTER UPDATE ON oauth_tokens FOR EACH ROW
    WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
    EXECUTE FUNCTION rollcall_auth_changed();
CREATE TRIGGER oauth_tokens_auth_delete AFTER DELETE ON oauth_tokens FOR EACH STATEMENT
    EXECUTE FUNCTION rollcall_auth_changed();

-- A grant ended, given an end, or tied to another secret (not its last use,
-- which every refresh writes).
CREATE TRIGGER oauth_grants_auth AFTER UPDATE ON oauth_grants FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
          OR OLD.ends_at IS DISTINCT FROM NEW.ends_at
          OR OLD.secret_generation IS DISTINCT FROM NEW.secret_generation
          OR OLD.workspace_id IS DISTINCT FROM NEW.workspace_id
          OR OLD.member_id IS DISTINCT FROM NEW.member_id)
    EXECUTE FUNCTION rollcall_auth_changed();
CREATE TRIGGER oauth_grants_auth_delete AFTER DELETE ON oauth_grants FOR EACH STATEMENT
    EXECUTE FUNCTION rollcall_auth_changed();

-- Clients and workspaces change rarely: any change.
CREATE TRIGGER oauth_clients_auth AFTER UPDATE OR DELETE ON oauth_clients FOR EACH STATEMENT
    EXECUTE FUNCTION rollcall_auth_changed();
CREATE TRIGGER workspaces_auth AFTER UPDATE OR DELETE ON workspaces FOR EACH STATEMENT
    EXECUTE FUNCTION rollcall_auth_changed();

-- An OAuth grant counts while its authorizer is an active admin: an admin
-- deactivated or given another role (members are never deleted).
CREATE TRIGGER members_auth AFTER UPDATE ON members FOR EACH ROW
    WHEN (OLD.active AND OLD.role = 'admin' AND NOT (NEW.active AND NEW.role = 'admin'))
    EXECUTE FUNCTION rollcall_auth_changed();
CREATE TRIGGER members_auth_delete AFTER DELETE ON members FOR EACH STATEMENT
    EXECUTE FUNCTION rollcall_auth_changed();
