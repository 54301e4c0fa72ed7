-- A grant lives only while the member who authorized it is an active admin.
-- The trigger ends it in the same transaction as the member's change, whichever
-- path or process made the change, so nothing can write a deactivation or a
-- demotion and leave the grant working; reactivation or promotion later does not
-- bring it back (revoked_at stays set).

ALTER TABLE oauth_grants ADD COLUMN ended_reason TEXT;  -- why revoked_at was set

-- Grants whose member stopped being an active admin before this rule existed end
-- now, so that a later reactivation or promotion cannot revive them either.
UPDATE oauth_grants
SET revoked_at = now(),
    ended_reason = (SELECT CASE WHEN m.active THEN 'demoted' ELSE 'deactivated' END
                    FROM members m WHERE m.id = oauth_grants.member_id)
WHERE revoked_at IS NULL
  AND member_id IN (SELECT id FROM members WHERE NOT (active AND role = 'admin'));

-- The live grants of a member, for the trigger.
CREATE INDEX oauth_grants_live_by_member ON oauth_grants (member_id) WHERE revoked_at IS NULL;

CREATE FUNCTION end_grants_of_former_admin() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    reason TEXT := CASE WHEN NEW.active THEN 'demoted' ELSE 'deactivated' END;
BEGIN
    INSERT INTO scim_activity (workspace_id, at, actor, operation, member_id, user_name, status, detail)
    SELECT g.workspace_id, now(), 'rollcall', 'end grant', NEW.id, NEW.user_name, 200,
           'OAuth access of ' || c.name || ' ended: ' || NEW.user_name ||
           CASE WHEN NEW.active THEN ' is no longer an admin' ELSE ' was deactivated' END
    FROM oauth_grants g JOIN oauth_clients c ON c.id = g.client_id
    WHERE g.member_id = NEW.id AND g.revoked_at IS NULL;
    UPDATE oauth_grants SET revoked_at = now(), ended_reason = reason
    WHERE member_id = NEW.id AND revoked_at IS NULL;
    RETURN NULL;
END
$$;

CREATE TRIGGER members_end_grants AFTER UPDATE OF active, role ON members
FOR EACH ROW
WHEN (OLD.active AND OLD.role = 'admin' AND NOT (NEW.active AND NEW.role = 'admin'))
EXECUTE FUNCTION end_grants_of_former_admin();
