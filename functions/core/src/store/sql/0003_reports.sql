-- Why a build's report (its log, artifacts or report.json) is incomplete: report
-- storage failed past its retries. NULL: everything was stored.
ALTER TABLE builds ADD COLUMN report_error TEXT;
