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

namespace local_student_dashboard\privacy;

use core_privacy\local\metadata\collection;
use core_privacy\local\request\approved_contextlist;
use core_privacy\local\request\approved_userlist;
use core_privacy\local\request\contextlist;
use core_privacy\local\request\userlist;
use core_privacy\local\request\writer;
use local_student_dashboard\local\repository;
use local_student_dashboard\local\row_types;

/**
 * Privacy provider: the dashboard tables hold students' registrations, payments and grades (synced from the
 * college's Zoho CRM), and the plugin sends enrolment and grade events to the zmsync receiver.
 *
 * The data is stored against the student's user context.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class provider implements
    \core_privacy\local\metadata\provider,
    \core_privacy\local\request\plugin\provider,
    \core_privacy\local\request\core_userlist_provider {

    /** @var string[] The row types that hold personal data. */
    public const PERSONAL_TYPES = ['registrations', 'payments', 'grades'];

    /**
     * Describe the personal data.
     *
     * @param collection $collection The collection to add to.
     * @return collection
     */
    public static function get_metadata(collection $collection): collection {
        $collection->add_database_table('local_student_dashboard_reg', [
            'userid' => 'privacy:metadata:reg:userid',
            'studentzohoid' => 'privacy:metadata:studentzohoid',
            'program' => 'privacy:metadata:reg:program',
            'registrationdate' => 'privacy:metadata:reg:registrationdate',
            'totalfee' => 'privacy:metadata:reg:totalfee',
            'scholarshippercent' => 'privacy:metadata:reg:scholarshippercent',
            'currency' => 'privacy:metadata:reg:currency',
            'status' => 'privacy:metadata:reg:status',
            'timemodified' => 'privacy:metadata:timemodified',
        ], 'privacy:metadata:reg');
        $collection->add_database_table('local_student_dashboard_pay', [
            'userid' => 'privacy:metadata:pay:userid',
            'studentzohoid' => 'privacy:metadata:studentzohoid',
            'amount' => 'privacy:metadata:pay:amount',
            'paymentdate' => 'privacy:metadata:pay:paymentdate',
            'duedate' => 'privacy:metadata:pay:duedate',
            'status' => 'privacy:metadata:pay:status',
            'paymentmethod' => 'privacy:metadata:pay:paymentmethod',
            'timemodified' => 'privacy:metadata:timemodified',
        ], 'privacy:metadata:pay');
        $collection->add_database_table('local_student_dashboard_grade', [
            'userid' => 'privacy:metadata:grade:userid',
            'studentzohoid' => 'privacy:metadata:studentzohoid',
            'unitzohoid' => 'privacy:metadata:grade:unitzohoid',
            'grade' => 'privacy:metadata:grade:grade',
            'moodlegrade' => 'privacy:metadata:grade:moodlegrade',
            'gradeddate' => 'privacy:metadata:grade:gradeddate',
            'timemodified' => 'privacy:metadata:timemodified',
        ], 'privacy:metadata:grade');
        $collection->add_external_location_link('zmsync', [
            'userid' => 'privacy:metadata:zmsync:userid',
            'courseid' => 'privacy:metadata:zmsync:courseid',
            'grade' => 'privacy:metadata:zmsync:grade',
            'eventname' => 'privacy:metadata:zmsync:eventname',
            'timecreated' => 'privacy:metadata:zmsync:timecreated',
        ], 'privacy:metadata:zmsync');
        return $collection;
    }

    /**
     * The contexts holding the user's data: their user context when any row is theirs.
     *
     * @param int $userid The user.
     * @return contextlist
     */
    public static function get_contexts_for_userid(int $userid): contextlist {
        $contextlist = new contextlist();
        $sql = "SELECT ctx.id
                  FROM {context} ctx
                 WHERE ctx.contextlevel = :contextlevel AND ctx.instanceid = :userid
                   AND (EXISTS (SELECT 1 FROM {local_student_dashboard_reg} r WHERE r.userid = ctx.instanceid)
                        OR EXISTS (SELECT 1 FROM {local_student_dashboard_pay} p WHERE p.userid = ctx.instanceid)
                        OR EXISTS (SELECT 1 FROM {local_student_dashboard_grade} g WHERE g.userid = ctx.instanceid))";
        $contextlist->add_from_sql($sql, ['contextlevel' => CONTEXT_USER, 'userid' => $userid]);
        return $contextlist;
    }

    /**
     * The users with data in a context: the owner of a user context, when they have rows.
     *
     * @param userlist $userlist The list to fill.
     */
    public static function get_users_in_context(userlist $userlist): void {
        $context = $userlist->get_context();
        if (!$context instanceof \context_user) {
            return;
        }
        foreach (self::PERSONAL_TYPES as $type) {
            $sql = "SELECT userid FROM {" . row_types::table($type) . "} WHERE userid = :userid";
            $userlist->add_from_sql('userid', $sql, ['userid' => $context->instanceid]);
        }
    }

    /**
     * Export the user's registrations, payments and grades.
     *
     * @param approved_contextlist $contextlist The approved contexts.
     */
    public static function export_user_data(approved_contextlist $contextlist): void {
        global $DB;

        $userid = (int) $contextlist->get_user()->id;
        foreach ($contextlist->get_contexts() as $context) {
            if (!$context instanceof \context_user || (int) $context->instanceid !== $userid) {
                continue;
            }
            $writer = writer::with_context($context);
            $pluginname = get_string('pluginname', 'local_student_dashboard');
            foreach (self::PERSONAL_TYPES as $type) {
                $records = $DB->get_records(row_types::table($type), ['userid' => $userid], 'id ASC');
                if (!$records) {
                    continue;
                }
                $rows = [];
                foreach ($records as $record) {
                    $row = repository::to_wire($type, $record);
                    unset($row['id'], $row['userid']);
                    $row['timemodified'] = \core_privacy\local\request\transform::datetime($row['timemodified']);
                    $rows[] = (object) $row;
                }
                $writer->export_data([$pluginname, get_string('privacy:path:' . $type, 'local_student_dashboard')],
                    (object) [$type => $rows]);
            }
        }
    }

    /**
     * Delete all data in a context: for a user context, that user's rows.
     *
     * @param \context $context The context.
     */
    public static function delete_data_for_all_users_in_context(\context $context): void {
        if ($context instanceof \context_user) {
            self::delete_user_rows((int) $context->instanceid);
        }
    }

    /**
     * Delete the user's data in the approved contexts.
     *
     * @param approved_contextlist $contextlist The approved contexts.
     */
    public static function delete_data_for_user(approved_contextlist $contextlist): void {
        $userid = (int) $contextlist->get_user()->id;
        foreach ($contextlist->get_contexts() as $context) {
            if ($context instanceof \context_user && (int) $context->instanceid === $userid) {
                self::delete_user_rows($userid);
            }
        }
    }

    /**
     * Delete the data of several users in one context.
     *
     * @param approved_userlist $userlist The approved users.
     */
    public static function delete_data_for_users(approved_userlist $userlist): void {
        $context = $userlist->get_context();
        if (!$context instanceof \context_user) {
            return;
        }
        if (in_array((int) $context->instanceid, array_map('intval', $userlist->get_userids()), true)) {
            self::delete_user_rows((int) $context->instanceid);
        }
    }

    /**
     * Delete every row of one user.
     *
     * @param int $userid The user.
     */
    protected static function delete_user_rows(int $userid): void {
        global $DB;

        foreach (self::PERSONAL_TYPES as $type) {
            $DB->delete_records(row_types::table($type), ['userid' => $userid]);
        }
    }
}
