-- Every Rollcall process keeps the bearer tokens it found live, and the clients
-- that authenticated (store::auth_cache), and forgets them all on a notification
-- on the channel 'rollcall_auth'. These triggers send one, with the commit of any
-- change to what those lookups read, whoever makes it (a process, a command,
-- psql): every column but the last-use times (written as tokens are used) and a
-- refresh token's rotation (refresh tokens are not kept). NOTIFY folds repeats in
-- one transaction into one. Not covered: changes made with triggers off
-- (session_replication_role = replica, as pg_restore does); after such a change,
-- restart the processes or allow 30 s (the longest anything is kept).
CREATE FUNCTION rollcall_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('rollcall_auth', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER api_tokens_auth AFTER UPDATE ON api_tokens FOR EACH ROW
    WHEN ((OLD.workspace_id, OLD.name, OLD.prefix, OLD.digest, OLD.created_by,
           OLD.created_at, OLD.revoked_at)
          IS DISTINCT FROM
          (NEW.workspace_id, NEW.name, NEW.prefix, NEW.digest, NEW.created_by,
           NEW.created_at, NEW.revoked_at))
    EXECUTE FUNCTION rollcall_auth_changed();

-- Housekeeping deletes tokens that expired a day ago: no signal for those.
CREATE TRIGGER oauth_tokens_auth AFTER UPDATE ON oauth_tokens FOR EACH ROW
    WHEN ((OLD.grant_id, OLD.kind, OLD.digest, OLD.scope, OLD.issued_at,
           OLD.expires_at, OLD.revoked_at)
          IS DISTINCT FROM
          (NEW.grant_id, NEW.kind, NEW.digest, NEW.scope, NEW.issued_at,
           NEW.expires_at, NEW.revoked_at))
    EXECUTE FUNCTION rollcall_auth_changed();
CREATE TRIGGER oauth_tokens_auth_delete AFTER DELETE ON oauth_tokens FOR EACH ROW
    WHEN (OLD.kind = 'access' AND OLD.revoked_at IS NULL AND OLD.expires_at > now())
    EXECUTE FUNCTION rollcall_auth_changed();

CREATE TRIGGER oauth_grants_auth AFTER UPDATE ON oauth_grants FOR EACH ROW
    WHEN ((OLD.client_id, OLD.workspace_id, OLD.member_id, OLD.scope, OLD.revoked_at,
           OLD.ends_at, OLD.secret_generation)
          IS DISTINCT FROM
          (NEW.client_id, NEW.workspace_id, NEW.member_id, NEW.scope, NEW.revoked_at,
           NEW.ends_at, NEW.secret_generation))
    EXECUTE FUNCTION rollcall_auth_changed();

-- An OAuth grant counts while its authorizer is an active admin (members are
-- never deleted; a change that makes someone an admin gives nothing kept).
CREATE TRIGGER members_auth AFTER UPDATE ON members FOR EACH ROW
    WHEN (OLD.active AND OLD.role = 'admin' AND NOT (NEW.active AND NEW.role = 'admin'))
    EXECUTE FUNCTION rollcall_auth_changed();

-- Clients and workspaces change rarely: any change. And any delete or truncate of
-- these tables.
CREATE TRIGGER oauth_clients_auth AFTER UPDATE OR DELETE ON oauth_clients
    FOR EACH STATEMENT EXECUTE FUNCTION rollcall_auth_changed();
CREATE TRIGGER workspaces_auth AFTER UPDATE OR DELETE ON workspaces
    FOR EACH STATEMENT EXECUTE FUNCTION rollcall_auth_changed();
CREATE TRIGGER api_tokens_auth_delete AFTER DELETE OR TRUNCATE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION rollcall_auth_changed();
CREATE TRIGGER oauth_grants_auth_delete AFTER DELETE OR TRUNCATE ON oauth_grants
    FOR EACH STATEMENT EXECUTE FUNCTION rollcall_auth_changed();
CREATE TRIGGER members_auth_delete AFTER DELETE OR TRUNCATE ON members
    FOR EACH STATEMENT EXECUTE FUNCTION rollcall_auth_changed();
CREATE TRIGGER oauth_tokens_auth_truncate AFTER TRUNCATE ON oauth_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION rollcall_auth_changed();
CREATE TRIGGER oauth_clients_auth_truncate AFTER TRUNCATE ON oauth_clients
    FOR EACH STATEMENT EXECUTE FUNCTION rollcall_auth_changed();
CREATE TRIGGER workspaces_auth_truncate AFTER TRUNCATE ON workspaces
    FOR EACH STATEMENT EXECUTE FUNCTION rollcall_auth_changed();
