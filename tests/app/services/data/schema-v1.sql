-- The schema today's code (commit 57c83bb) produces: `Workstation(data_dir)` on an empty directory (the
-- Store seeds the demo tables and meta, DemoUserDirectory, BreakGlassService and ConsentService add
-- credentials, break_glass and consents), then `sqlite3 data_dir/ccc.db .schema`. Kept as the record of
-- schema version 1: tests/app/services/test_store.py holds migration 1 (and 2 for the tables the services
-- made) to exactly this.
CREATE TABLE IF NOT EXISTS "hospitals" (
   "id" TEXT PRIMARY KEY,
   "name" TEXT
);
CREATE TABLE IF NOT EXISTS "staff" (
   "id" TEXT PRIMARY KEY,
   "name" TEXT,
   "role" TEXT,
   "hospital_ids" TEXT,
   "manufacturer_id" TEXT,
   "patient_id" TEXT
);
CREATE TABLE IF NOT EXISTS "patients" (
   "id" TEXT PRIMARY KEY,
   "mrn" TEXT,
   "name" TEXT,
   "birth_date" TEXT,
   "sex" TEXT,
   "hospital_id" TEXT,
   "room" TEXT,
   "bed" TEXT,
   "care_team" TEXT,
   "assigned_physicians" TEXT,
   "sealed" INTEGER,
   "emergency" INTEGER,
   "consent_export" INTEGER
);
CREATE TABLE IF NOT EXISTS "devices" (
   "id" TEXT PRIMARY KEY,
   "patient_id" TEXT,
   "hospital_id" TEXT,
   "manufacturer_id" TEXT,
   "model" TEXT,
   "serial" TEXT,
   "firmware_version" TEXT,
   "implanted_on" TEXT
);
CREATE TABLE IF NOT EXISTS "notes" (
   "id" TEXT PRIMARY KEY,
   "patient_id" TEXT,
   "author_id" TEXT,
   "note_type" TEXT,
   "time" TEXT,
   "text" TEXT
);
CREATE TABLE IF NOT EXISTS "history" (
   "id" TEXT PRIMARY KEY,
   "patient_id" TEXT,
   "category" TEXT,
   "date" TEXT,
   "summary" TEXT
);
CREATE TABLE IF NOT EXISTS "delegations" (
   "id" TEXT PRIMARY KEY,
   "patient_id" TEXT,
   "delegate_id" TEXT,
   "granted_by" TEXT,
   "patient_permission" INTEGER,
   "expires_at" TEXT,
   "revoked" INTEGER
);
CREATE TABLE IF NOT EXISTS "firmware_updates" (
   "id" TEXT PRIMARY KEY,
   "device_id" TEXT,
   "target_version" TEXT,
   "state" TEXT,
   "requested_by" TEXT,
   "approvals" TEXT,
   "requested_at" TEXT
);
CREATE TABLE IF NOT EXISTS "transmissions" (
   "patient_id" TEXT,
   "time" TEXT,
   "code" TEXT,
   "value" REAL,
   "unit" TEXT,
   "abnormal" INTEGER
);
CREATE INDEX "idx_transmissions_patient_id_time"
    ON "transmissions" ("patient_id", "time");
CREATE TABLE IF NOT EXISTS "meta" (
   "key" TEXT PRIMARY KEY,
   "value" TEXT
);
CREATE TABLE IF NOT EXISTS "credentials" (
   "user_id" TEXT PRIMARY KEY,
   "password_hash" TEXT
);
CREATE TABLE IF NOT EXISTS "break_glass" (
   "id" TEXT PRIMARY KEY,
   "user_id" TEXT,
   "patient_id" TEXT,
   "reason" TEXT,
   "justification" TEXT,
   "started_at" TEXT,
   "ended_at" TEXT,
   "end_reason" TEXT
);
CREATE TABLE IF NOT EXISTS "consents" (
   "id" TEXT PRIMARY KEY,
   "patient_id" TEXT,
   "scope" TEXT,
   "given_by" TEXT,
   "recorded_by" TEXT,
   "recorded_at" TEXT,
   "expires_at" TEXT
);
