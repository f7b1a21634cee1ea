-- Invitation management: an org's invitations are listed newest first
-- (GET /api/v1/orgs/{org_id}/invitations), so index them by org and time.
CREATE INDEX invitations_org ON invitations (org_id, created_at);
