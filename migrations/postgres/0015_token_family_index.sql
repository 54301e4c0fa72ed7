-- Rotating a refresh token retires its grant's newest refresh token:
--   UPDATE oauth_tokens ... WHERE grant_id = ? AND kind = 'refresh'
--                             AND rotated_at IS NULL AND revoked_at IS NULL
-- Through (grant_id, kind) that read every refresh token the grant had ever had,
-- each one's row included, to find the one newest: a grant refreshed every few
-- seconds made each refresh slower than the last (rollcall-bench case 7 spent a
-- quarter of its time in that walk). With the two end columns in the index, the
-- search lands on the newest token alone (IS NULL is an index equality in both
-- databases); the index still serves every lookup by grant.
DROP INDEX oauth_tokens_by_grant;
CREATE INDEX oauth_tokens_by_grant_state ON oauth_tokens (grant_id, kind, rotated_at, revoked_at);
