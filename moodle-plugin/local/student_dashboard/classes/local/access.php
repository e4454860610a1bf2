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
 * Who may see whose dashboard.
 *
 * A user sees their own dashboard with local/student_dashboard:view. Another user's dashboard needs
 * local/student_dashboard:viewall; without it a request for someone else fails, it never falls back to
 * showing anything.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class access {

    /**
     * The user whose dashboard the current user asked for, after the capability checks.
     *
     * @param int $requesteduserid The user id from the request, 0 for oneself.
     * @return \stdClass The user record.
     * @throws \required_capability_exception When the current user may not see that dashboard.
     * @throws \moodle_exception When the requested user does not exist.
     */
    public static function require_target_user(int $requesteduserid): \stdClass {
        global $DB, $USER;

        $context = \context_system::instance();
        if ($requesteduserid === 0 || $requesteduserid === (int) $USER->id) {
            require_capability('local/student_dashboard:view', $context);
            return $DB->get_record('user', ['id' => $USER->id], '*', MUST_EXIST);
        }
        require_capability('local/student_dashboard:viewall', $context);
        $user = $DB->get_record('user', ['id' => $requesteduserid, 'deleted' => 0]);
        if (!$user || isguestuser($user)) {
            throw new \moodle_exception('invaliduser');
        }
        return $user;
    }

    /**
     * Whether the current user can see any student's dashboard.
     *
     * @return bool
     */
    public static function can_view_all(): bool {
        return has_capability('local/student_dashboard:viewall', \context_system::instance());
    }

    /**
     * Whether a user has any dashboard data.
     *
     * @param int $userid The user.
     * @return bool
     */
    public static function has_data(int $userid): bool {
        global $DB;

        foreach (['registrations', 'payments', 'grades'] as $type) {
            if ($DB->record_exists(row_types::table($type), ['userid' => $userid])) {
                return true;
            }
        }
        return false;
    }

    /**
     * Students with dashboard data whose name, email or id number contains the search text.
     *
     * @param string $search The text.
     * @param int $limit The most users to return.
     * @return \stdClass[] Users with id, firstname, lastname, email and idnumber (and the other name fields).
     */
    public static function search_students(string $search, int $limit = 20): array {
        global $DB;

        $search = trim($search);
        if ($search === '') {
            return [];
        }
        $fields = \core_user\fields::for_name()->including('email', 'idnumber')->get_sql('u', false, '', '', false);
        $params = [];
        $conditions = [];
        foreach (['firstname', 'lastname', 'email', 'idnumber'] as $i => $column) {
            $conditions[] = $DB->sql_like('u.' . $column, ':s' . $i, false, false);
            $params['s' . $i] = '%' . $DB->sql_like_escape($search) . '%';
        }
        $sql = "SELECT u.id, {$fields->selects}
                  FROM {user} u
                 WHERE u.deleted = 0 AND (" . implode(' OR ', $conditions) . ")
                   AND (EXISTS (SELECT 1 FROM {local_student_dashboard_reg} r WHERE r.userid = u.id)
                        OR EXISTS (SELECT 1 FROM {local_student_dashboard_pay} p WHERE p.userid = u.id)
                        OR EXISTS (SELECT 1 FROM {local_student_dashboard_grade} g WHERE g.userid = u.id))
              ORDER BY u.lastname ASC, u.firstname ASC, u.id ASC";
        return $DB->get_records_sql($sql, $params, 0, $limit);
    }
}
