-- 0012_foreach_chunks.sql: the chunked forEach steps, for the reaper.
--
-- A forEach step without forEachConcurrency makes its elements in chunks
-- (dwa._fe_chunk, sql/30_state.sql) while the ones made run.  The reaper
-- looks for those with none left to run and more to make: only steps
-- still making elements are in this index, whatever dwa.steps holds.
CREATE INDEX IF NOT EXISTS steps_chunked_idx ON dwa.steps (id)
    WHERE fe_next < fe_total AND fe_concurrency IS NULL;
