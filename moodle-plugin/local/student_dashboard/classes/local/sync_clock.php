<?php
// This file is part of Moodle - http://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.
//
// Moodle is distributed in the hope that it will be useful,
// but WITHOUT ANY WARRANTY; without even the implied warranty of
// MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
// GNU General Public License for more details.
//
// You should have received a copy of the GNU General Public License
// along with Moodle.  If not, see <http://www.gnu.org/licenses/>.

namespace local_student_dashboard\local;

/**
 * When zmsync last read or wrote the dashboard tables, shown on the dashboard as "last updated".
 *
 * Every get_, upsert_ and delete_ call of the sync records the time, at most once a minute (a sync makes
 * hundreds of calls; one config write a minute is enough for a date shown to the minute).
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
final class sync_clock {

    /** @var string The plugin setting that holds the time. */
    public const SETTING = 'lastsync';

    /** @var int Seconds between two writes of the setting. */
    public const RESOLUTION = 60;

    /**
     * Record that the sync is reading or writing the dashboard tables now.
     *
     * @param int|null $now The time, null for now.
     */
    public static function touch(?int $now = null): void {
        $now = $now ?? time();
        if ($now - self::last() >= self::RESOLUTION) {
            set_config(self::SETTING, $now, 'local_student_dashboard');
        }
    }

    /**
     * The time of the sync's last call, 0 if it never called.
     *
     * @return int
     */
    public static function last(): int {
        return (int) get_config('local_student_dashboard', self::SETTING);
    }
}
