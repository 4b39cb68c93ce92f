/// The Lua scripts, each run atomically by Redis.
enum Scripts {
    /// KEYS: entry, thread index. ARGV: order, value, ttl, and optionally the entry a read saw.
    /// Sets the entry unless it holds an order at least as new (orders are hex of the same
    /// length, so byte order is time order), or, with the fourth argument, when it still holds
    /// exactly the entry without content that the read saw.
    ///
    /// That second form lets a read that met an entry without content (a tombstone newer than
    /// any head, after an invalidation) put the store's head, read after it, in its place: if
    /// nothing wrote the entry since, that head is at least as new as any write made before.
    /// A set refused by an entry without content changes that entry's bytes (its order stays),
    /// so that a read's fill that began before the refused write fails and the next read's
    /// goes in: the refused write's head may be newer than the one that read found.
    static let setIfNewer = """
        local current = redis.call('GETRANGE', KEYS[1], 0, 32)
        if current ~= '' and current >= ARGV[1] then
            if string.sub(current, 33, 33) ~= '0' then return 0 end
            local value = redis.call('GET', KEYS[1])
            if value ~= ARGV[4] then
                local mark = string.sub(redis.sha1hex(value .. ARGV[1]), 1, 16)
                redis.call('SET', KEYS[1], current .. mark, 'KEEPTTL')
                return 0
            end
        end
        redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
        redis.call('SADD', KEYS[2], KEYS[1])
        redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
        return 1
        """

    /// KEYS: entry, thread index. ARGV: ttl. Reads an entry and restarts its time to live.
    static let getAndRefresh = """
        local value = redis.call('GET', KEYS[1])
        if value then
            redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
            redis.call('EXPIRE', KEYS[2], tonumber(ARGV[1]))
        end
        return value
        """

    /// KEYS: thread index. ARGV: tombstone order, ttl, prefix. Head entries become tombstones
    /// (so that a read that began before the delete cannot cache the old head again); by-id
    /// entries go.
    static let tombstoneThread = """
        local members = redis.call('SMEMBERS', KEYS[1])
        local headMarker = ARGV[3] .. ':h:'
        for _, key in ipairs(members) do
            if string.sub(key, 1, #headMarker) == headMarker then
                redis.call('SET', key, ARGV[1] .. string.rep('\\0', 16), 'EX', tonumber(ARGV[2]))
            else
                redis.call('DEL', key)
            end
        end
        return #members
        """

    /// KEYS: thread index. ARGV: prefix. Deletes the thread's by-id entries.
    static let dropByID = """
        local members = redis.call('SMEMBERS', KEYS[1])
        local marker = ARGV[1] .. ':c:'
        for _, key in ipairs(members) do
            if string.sub(key, 1, #marker) == marker then
                redis.call('DEL', key)
                redis.call('SREM', KEYS[1], key)
            end
        end
        return 0
        """
}
