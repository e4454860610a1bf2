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
 * The JSON bodies the plugin posts to the zmsync receiver (docs/plugin-contract.md, section 9).
 *
 * Two shapes: enrolment events go to {receiverurl}/enrollment, grade events to
 * {receiverurl}/grade. This class has no Moodle dependency.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
final class event_payload {

    /** @var string Kind of event: an enrolment was created, updated or deleted. */
    public const KIND_ENROLMENT = 'enrollment';

    /** @var string Kind of event: a course total grade changed. */
    public const KIND_GRADE = 'grade';

    /**
     * The body of an enrolment event.
     *
     * @param string $eventid The unique event id.
     * @param string $eventname The Moodle event class, e.g. "\core\event\user_enrolment_created".
     * @param int $courseid The course.
     * @param int $userid The enrolled user.
     * @param int $timecreated When the Moodle event happened (Unix time).
     * @return array
     */
    public static function enrolment(string $eventid, string $eventname, int $courseid, int $userid, int $timecreated): array {
        return [
            'eventid' => $eventid,
            'eventname' => $eventname,
            'courseid' => $courseid,
            'userid' => $userid,
            'timecreated' => $timecreated,
        ];
    }

    /**
     * The body of a grade event.
     *
     * @param string $eventid The unique event id.
     * @param int $gradeid The grade_grades id.
     * @param int $userid The graded student.
     * @param int $courseid The course.
     * @param float|null $grade The course total final grade, null when removed.
     * @return array
     */
    public static function grade(string $eventid, int $gradeid, int $userid, int $courseid, ?float $grade): array {
        return [
            'event_id' => $eventid,
            'event_type' => 'grade_updated',
            'entity_type' => 'grade',
            'entity_id' => (string) $gradeid,
            'student_id' => $userid,
            'course_id' => $courseid,
            'grade' => $grade,
        ];
    }

    /**
     * Encode a body exactly as it is sent and signed.
     *
     * @param array $payload The body.
     * @return string Compact JSON.
     */
    public static function encode(array $payload): string {
        return json_encode($payload, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION |
            JSON_THROW_ON_ERROR);
    }

    /**
     * The URL an event kind is posted to.
     *
     * @param string $receiverurl The configured base URL.
     * @param string $kind One of the KIND_ constants.
     * @return string
     */
    public static function url(string $receiverurl, string $kind): string {
        if ($kind !== self::KIND_ENROLMENT && $kind !== self::KIND_GRADE) {
            throw new \InvalidArgumentException('Unknown event kind: ' . $kind);
        }
        return rtrim($receiverurl, '/') . '/' . $kind;
    }
}
