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

namespace local_student_dashboard;

use local_student_dashboard\local\event_payload;
use local_student_dashboard\task\send_event;

/**
 * Event observers: queue an ad-hoc task per enrolment or course-total grade change; never send inline.
 *
 * Changes the zmsync integration made itself (through a web service, as the sync user) are not sent back to it
 * (setting skipsyncchanges, on by default): a first sync of 1,500 students would otherwise queue about 5,700
 * tasks whose events only tell zmsync what it has just written.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class observer {

    /**
     * An enrolment was created, updated or deleted.
     *
     * @param \core\event\base $event One of user_enrolment_created, user_enrolment_updated, user_enrolment_deleted.
     */
    public static function user_enrolment_changed(\core\event\base $event): void {
        if (!self::is_configured() || self::is_sync_change($event)) {
            return;
        }
        $eventid = self::new_event_id();
        $payload = event_payload::enrolment($eventid, $event->eventname, (int) $event->courseid,
            (int) $event->relateduserid, (int) $event->timecreated);
        self::queue(['kind' => event_payload::KIND_ENROLMENT, 'eventid' => $eventid, 'payload' => $payload]);
    }

    /**
     * A user's grade changed; only course totals are sent (the sync reads course totals).
     *
     * @param \core\event\user_graded $event The event.
     */
    public static function user_graded(\core\event\user_graded $event): void {
        global $DB;

        if (!self::is_configured() || self::is_sync_change($event)) {
            return;
        }
        $itemid = (int) ($event->other['itemid'] ?? 0);
        if ($DB->get_field('grade_items', 'itemtype', ['id' => $itemid]) !== 'course') {
            return;
        }
        self::queue([
            'kind' => event_payload::KIND_GRADE,
            'eventid' => self::new_event_id(),
            'gradeid' => (int) $event->objectid,
            'userid' => (int) $event->relateduserid,
            'courseid' => (int) $event->courseid,
        ]);
    }

    /**
     * Whether a receiver URL and a secret are set; without them nothing is queued.
     *
     * @return bool
     */
    public static function is_configured(): bool {
        $config = get_config('local_student_dashboard');
        return !empty($config->receiverurl) && !empty($config->hmacsecret);
    }

    /**
     * Whether the event is the integration's own change, which is not sent back to it.
     *
     * True when the setting skipsyncchanges is on (the default), the request is a web-service request, and the
     * user who made the change holds local/student_dashboard:manage in the system context by a role (the sync
     * user; being a site administrator does not count, so an admin's change through the mobile app is sent).
     *
     * @param \core\event\base $event The event.
     * @param bool|null $inwebservice Whether this is a web-service request; null to detect it (WS_SERVER).
     * @return bool
     */
    public static function is_sync_change(\core\event\base $event, ?bool $inwebservice = null): bool {
        if (get_config('local_student_dashboard', 'skipsyncchanges') === '0') {
            return false;
        }
        $inwebservice = $inwebservice ?? (defined('WS_SERVER') && WS_SERVER);
        $userid = (int) $event->userid;
        if (!$inwebservice || $userid <= 0) {
            return false;
        }
        return has_capability('local/student_dashboard:manage', \context_system::instance(), $userid, false);
    }

    /**
     * A new unique event id: "moodle-" and a version 4 UUID.
     *
     * @return string
     */
    protected static function new_event_id(): string {
        return 'moodle-' . \core\uuid::generate();
    }

    /**
     * Queue the ad-hoc task that sends one event.
     *
     * @param array $data The task's custom data.
     */
    protected static function queue(array $data): void {
        $task = new send_event();
        $task->set_custom_data($data);
        \core\task\manager::queue_adhoc_task($task);
    }
}
