-- 70_builtins.sql: the task types dwad runs itself.
INSERT INTO dwa.task_types (name, executor, tags, description) VALUES
    ('noop', 'builtin', '{generic}', 'Does nothing; returns {}'),
    ('echo', 'builtin', '{generic}', 'Returns its input'),
    ('sleep', 'builtin', '{generic}', 'Waits "ms" milliseconds; returns its input'),
    ('fail', 'builtin', '{generic}', 'Fails with "message"; transient when "transient" is true'),
    ('data.aggregate', 'builtin', '{data,generic,transform}',
        'Returns its input: by default the outputs of its dependencies keyed by id'),
    ('text.chunk', 'builtin', '{text,generic,transform}',
        'Splits "text" into chunks of "size" characters overlapping by "overlap"'),
    ('http.request', 'builtin', '{data,generic,fetch}',
        'HTTP request: url, method, headers, body, timeoutMs -> status, headers, body'),
    ('data.download', 'builtin', '{data,generic,fetch}',
        'Downloads url (filename, timeoutMs) into the task''s directory -> path, bytes, content_type, sha256')
ON CONFLICT (name) DO UPDATE
    SET executor = EXCLUDED.executor, tags = EXCLUDED.tags,
        description = EXCLUDED.description, updated_at = now()
    WHERE dwa.task_types.executor = 'builtin';
